-- dangerous: CREATE INDEX CONCURRENTLY in a file without -- no-transaction: sqlx runs the file in a transaction, where PostgreSQL refuses it, so the deploy fails.
-- expect-error: 25001
CREATE INDEX CONCURRENTLY media_kind_idx ON media (kind);
