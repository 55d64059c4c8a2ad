-- safe: ADD COLUMN with a constant default is stored in the catalog (PostgreSQL 11+): no rewrite, no scan, even with NOT NULL.
ALTER TABLE media ADD COLUMN views bigint NOT NULL DEFAULT 0;
