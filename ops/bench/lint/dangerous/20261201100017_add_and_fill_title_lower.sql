-- dangerous: ALTER TABLE takes ACCESS EXCLUSIVE, and the UPDATE after it in the same transaction keeps that lock held while it rewrites every row.
ALTER TABLE media ADD COLUMN title_lower text;
UPDATE media SET title_lower = lower(title);
