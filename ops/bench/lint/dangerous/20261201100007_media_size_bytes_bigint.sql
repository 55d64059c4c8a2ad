-- dangerous: ALTER COLUMN TYPE integer -> bigint is not binary-compatible: the table and its indexes are rewritten under ACCESS EXCLUSIVE.
ALTER TABLE media ALTER COLUMN size_bytes TYPE bigint;
