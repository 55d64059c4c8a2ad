-- dangerous: ALTER COLUMN TYPE text -> integer (USING) converts every row: a full rewrite under ACCESS EXCLUSIVE, and fails on the first non-number.
ALTER TABLE comments ALTER COLUMN score_text TYPE integer USING score_text::integer;
