-- dangerous: ADD CHECK without NOT VALID scans the whole table under ACCESS EXCLUSIVE, blocking reads and writes.
ALTER TABLE media ADD CONSTRAINT media_size_bytes_positive CHECK (size_bytes > 0);
