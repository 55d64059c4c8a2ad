-- no-transaction
-- safe: DROP INDEX CONCURRENTLY in a -- no-transaction file waits for running queries instead of blocking them; sqlx runs it outside a transaction.
DROP INDEX CONCURRENTLY media_created_at_idx;
