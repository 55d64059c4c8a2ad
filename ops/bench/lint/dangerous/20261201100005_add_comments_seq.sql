-- dangerous: ADD COLUMN bigserial on an existing table fills every row from a sequence (a volatile default): a full rewrite under ACCESS EXCLUSIVE.
ALTER TABLE comments ADD COLUMN seq bigserial;
