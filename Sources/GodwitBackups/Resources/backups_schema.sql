-- The backups' part of Godwit's schema (owner `backups`): the record of every verified backup,
-- which `backup verify` checks a file against and `backup list` shows. It needs no other part:
-- `godwit backup create` installs it alone. A new install, at the version the backups'
-- SchemaPart names; later changes are upgrade steps of their own.
--
-- job_id names the migrate job that took the backup; the jobs part, which knows both, makes it
-- a foreign key to the queue's jobs, and shows the files to controllers only (backup_files).
--
-- @schema@ stands for the schema's quoted name; the installer substitutes it, and runs this file
-- in the transaction that records it.

CREATE TABLE @schema@.backups (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file          text NOT NULL,
    size_bytes    bigint NOT NULL,
    sha256        text NOT NULL,
    database_name text NOT NULL,
    job_id        bigint,
    verified_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    reason        text
);
-- Why the backup was taken, in words a person reads in `backup list`: "before migration 3
-- (add_users)", "by hand", "before restore".
COMMENT ON COLUMN @schema@.backups.reason IS
    'Why the backup was taken: "before migration V (description)", "by hand", ...; NULL before schema step 4.';

REVOKE ALL ON @schema@.backups FROM PUBLIC;
