-- safe: varchar(50) to text is binary-compatible: catalog only, no rewrite, no scan.
ALTER TABLE media ALTER COLUMN title TYPE text;
