-- safe: ADD CHECK ... NOT VALID skips the scan: ACCESS EXCLUSIVE for an instant only; VALIDATE CONSTRAINT later scans without blocking.
ALTER TABLE media ADD CONSTRAINT media_size_bytes_positive CHECK (size_bytes > 0) NOT VALID;
