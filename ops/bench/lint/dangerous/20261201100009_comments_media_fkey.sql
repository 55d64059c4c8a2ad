-- dangerous: ADD FOREIGN KEY without NOT VALID scans comments while holding SHARE ROW EXCLUSIVE on comments and media, blocking writes to both.
ALTER TABLE comments ADD CONSTRAINT comments_media_id_fkey FOREIGN KEY (media_id) REFERENCES media (id);
