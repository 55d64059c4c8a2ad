-- dangerous: CREATE INDEX without CONCURRENTLY on an existing table holds a SHARE lock that blocks every write to media until the index is built.
CREATE INDEX media_user_id_idx ON media (user_id);
