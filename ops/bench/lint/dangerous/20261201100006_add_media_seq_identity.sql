-- dangerous: ADD COLUMN GENERATED ALWAYS AS IDENTITY on an existing table numbers every row: a full rewrite under ACCESS EXCLUSIVE.
ALTER TABLE media ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
