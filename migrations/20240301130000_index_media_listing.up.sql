-- no-transaction
-- Built CONCURRENTLY so writes to media go on while the indexes build; each statement runs
-- on its own, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS media_tenant_created_idx ON media (tenant_id, created_at DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS media_tenant_kind_idx ON media (tenant_id, kind);
