-- no-transaction
DROP INDEX CONCURRENTLY IF EXISTS media_tenant_kind_idx;
DROP INDEX CONCURRENTLY IF EXISTS media_tenant_created_idx;
