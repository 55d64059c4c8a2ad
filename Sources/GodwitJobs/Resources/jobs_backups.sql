-- The link from a backup to the migrate job that took it, and who sees where backups are.
--
-- One of the jobs part's files (owner `jobs`), which install together in one transaction in
-- the order `SchemaPart.jobs` names them. @schema@ stands for the schema's quoted name; the
-- installer substitutes it.

-- The backup a migrate job took names the job (backup create's own have none), and goes on
-- naming it until the job is deleted.
ALTER TABLE @schema@.backups ADD CONSTRAINT backups_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES @schema@.jobs (id) ON DELETE SET NULL;

-- Where backups are on the worker's host is for controllers and the owner, like a job's result.
CREATE VIEW @schema@.backup_files WITH (security_barrier) AS
SELECT b.id, b.file FROM @schema@.backups b
WHERE pg_catalog.has_function_privilege(current_user, '@schema@.retry(bigint)', 'EXECUTE');
REVOKE ALL ON @schema@.backup_files FROM PUBLIC;
