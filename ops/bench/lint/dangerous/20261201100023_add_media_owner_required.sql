-- dangerous: a NOT NULL column without a DEFAULT fails on any table that has rows (CI's empty database lets it pass), and the failed deploy holds ACCESS EXCLUSIVE on media while it scans to find out.
-- expect-error: 23502
ALTER TABLE media ADD COLUMN owner_id bigint NOT NULL;
