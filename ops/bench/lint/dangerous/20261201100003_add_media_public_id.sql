-- dangerous: ADD COLUMN with a volatile default (gen_random_uuid()) rewrites the whole table under ACCESS EXCLUSIVE.
ALTER TABLE media ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid();
