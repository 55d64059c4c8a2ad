-- dangerous: RENAME COLUMN breaks every running application instance that still uses the old name.
ALTER TABLE users RENAME COLUMN name TO full_name;
