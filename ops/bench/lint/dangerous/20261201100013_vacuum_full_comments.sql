-- no-transaction
-- dangerous: VACUUM FULL rewrites the table and its indexes under ACCESS EXCLUSIVE: no reads or writes until it ends (and it cannot run in a transaction).
VACUUM FULL comments;
