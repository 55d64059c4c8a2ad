-- dangerous: CLUSTER rewrites the table in index order under ACCESS EXCLUSIVE: no reads or writes until it ends.
CLUSTER media USING media_pkey;
