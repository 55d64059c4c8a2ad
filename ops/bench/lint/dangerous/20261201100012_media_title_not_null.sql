-- dangerous: SET NOT NULL without a validated CHECK (title IS NOT NULL) scans the whole table under ACCESS EXCLUSIVE.
ALTER TABLE media ALTER COLUMN title SET NOT NULL;
