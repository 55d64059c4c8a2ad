-- Concurrent workload for ops/bench/backfill: one single-row update by primary key a
-- transaction, on a random row among the 10,000 random ids kept in workload_ids
-- (:nids is passed with pgbench -D, smaller when the table is smaller).
\set n random(1, :nids)
UPDATE media SET updated_at = now() WHERE id = (SELECT id FROM workload_ids WHERE n = :n);
