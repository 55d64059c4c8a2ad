-- dangerous: an UPDATE without WHERE inside a WITH query still changes every row of comments in one transaction.
WITH hidden AS (UPDATE comments SET body = '[hidden]' RETURNING id)
SELECT count(*) FROM hidden;
