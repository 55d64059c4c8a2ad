-- dangerous: an UPDATE of the whole table locks every row until it commits (writers to any row wait) and writes a new version of each row in one transaction.
UPDATE media SET kind = lower(kind);
