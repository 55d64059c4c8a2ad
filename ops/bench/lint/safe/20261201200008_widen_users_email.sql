-- safe: widening varchar(50) to varchar(200) is binary-compatible: catalog only, no rewrite of the table or of users_email_idx.
ALTER TABLE users ALTER COLUMN email TYPE varchar(200);
