-- dangerous: ADD COLUMN with a volatile default (clock_timestamp()) rewrites the whole table under ACCESS EXCLUSIVE.
ALTER TABLE comments ADD COLUMN seen_at timestamptz DEFAULT clock_timestamp();
