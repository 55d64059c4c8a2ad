-- safe: COMMENT ON changes only the catalog.
COMMENT ON TABLE media IS 'Uploaded files, one row each';
COMMENT ON COLUMN media.size_bytes IS 'Size of the file in bytes';
