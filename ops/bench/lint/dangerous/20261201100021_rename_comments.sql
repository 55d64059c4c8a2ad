-- dangerous: ALTER TABLE ... RENAME TO breaks every running application instance that still queries the old name.
ALTER TABLE comments RENAME TO media_comments;
