-- safe: VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.
ALTER TABLE comments VALIDATE CONSTRAINT comments_body_length;
