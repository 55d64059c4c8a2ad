-- A zero-downtime column change's record: what `godwit change start` made, where its backfill,
-- verification, index builds and validation stand, and how it ended.
--
-- One of the changes part's files (owner `changes`), which install together in one transaction
-- in the order `SchemaPart.changes` names them. @schema@ stands for the schema's quoted name;
-- the installer substitutes it.

CREATE TABLE @schema@.change_records (
    name              text PRIMARY KEY,
    -- The table, schema-qualified and quoted, as the change's DDL names it, and its oid at start.
    table_name        text NOT NULL,
    table_oid         oid NOT NULL,
    -- The key the backfill and the verification walk.
    key_column        text NOT NULL,
    phase             text NOT NULL DEFAULT 'expanding' CHECK (phase IN
        ('expanding', 'backfilling', 'verifying', 'ready', 'completing', 'completed', 'aborted')),
    -- The file as given to `change start`, its path as written, and its parsed directives.
    file              text NOT NULL,
    source            text NOT NULL,
    definition        jsonb NOT NULL,
    -- Every later step's SQL, generated at start (`ChangeStatements`: table, key, disagrees,
    -- indexes, uniques, validate, complete, abort, migration, dropped), so that the worker,
    -- complete and abort run what start planned and never regenerate it.
    statements        jsonb NOT NULL,
    -- The batched job that fills the new columns, and the job that verifies, builds the indexes
    -- and validates the constraints once it has succeeded.
    backfill_job_id   bigint REFERENCES @schema@.jobs (id) ON DELETE SET NULL,
    finish_job_id     bigint REFERENCES @schema@.jobs (id) ON DELETE SET NULL,
    -- The verification's keyset pass: rows read, rows whose two sides disagree, where it stands.
    rows_total        bigint,
    verified_rows     bigint NOT NULL DEFAULT 0,
    disagreeing_rows  bigint,
    verify_cursor     text,
    verified_at       timestamptz,
    indexes_built_at  timestamptz,
    validated_at      timestamptz,
    -- Why complete went ahead without the reader evidence (`--without-reader-check`).
    reader_check_waiver text,
    -- The last error of the steps after the backfill, in one line; NULL once a step succeeds.
    error             text,
    -- The migration `complete --write-migration` wrote and recorded.
    migration_version bigint,
    started_by        text NOT NULL DEFAULT session_user,
    started_at        timestamptz NOT NULL DEFAULT now(),
    ready_at          timestamptz,
    completed_at      timestamptz,
    aborted_at        timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_records_in_flight ON @schema@.change_records (table_oid)
    WHERE phase NOT IN ('completed', 'aborted');
