-- dangerous: a DELETE of the whole table locks every row until it commits and leaves every row dead for vacuum, in one transaction.
DELETE FROM comments;
