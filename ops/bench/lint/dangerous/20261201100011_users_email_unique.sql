-- dangerous: ADD UNIQUE without a prebuilt index builds the index under ACCESS EXCLUSIVE, blocking reads and writes of users.
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
