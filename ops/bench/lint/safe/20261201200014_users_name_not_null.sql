-- safe: SET NOT NULL after the validated CHECK (name IS NOT NULL) in the seed: PostgreSQL 12+ proves it from the check and skips the scan; the check is then redundant.
ALTER TABLE users ALTER COLUMN name SET NOT NULL;
ALTER TABLE users DROP CONSTRAINT users_name_not_null;
