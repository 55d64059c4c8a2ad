-- safe: ADD FOREIGN KEY ... NOT VALID checks only new rows: a brief SHARE ROW EXCLUSIVE with no scan; VALIDATE CONSTRAINT later scans without blocking writes.
ALTER TABLE comments ADD CONSTRAINT comments_media_id_fkey FOREIGN KEY (media_id) REFERENCES media (id) NOT VALID;
