-- no-transaction
-- safe: CREATE INDEX CONCURRENTLY in a -- no-transaction file builds under SHARE UPDATE EXCLUSIVE: reads and writes go on.
CREATE INDEX CONCURRENTLY media_user_id_idx ON media (user_id);
