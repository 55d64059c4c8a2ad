-- dangerous: REINDEX without CONCURRENTLY blocks writes to media (SHARE) and takes ACCESS EXCLUSIVE on every index, so reads that would use them wait too.
REINDEX TABLE media;
