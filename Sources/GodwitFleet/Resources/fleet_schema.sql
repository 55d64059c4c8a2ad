-- The fleets' part of Godwit's schema (owner `fleet`): the record of every fleet run (`godwit
-- fleet migrate`, `godwit fleet enqueue`) and of each of its targets, written by the fleet
-- process as it goes, read by `fleet status`, `fleet resume`, the dashboard and anyone with SQL.
-- It needs no other part: the fleet commands install it alone on the control database.
--
-- @schema@ stands for the schema's quoted name; the installer substitutes it, and runs this file
-- in the transaction that records it.

CREATE TABLE @schema@.fleet_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command        text NOT NULL CHECK (command IN ('migrate', 'enqueue')),
    -- running until the fleet process finishes it; a run whose process died stays running with
    -- an old heartbeat_at (and its advisory lock free): `fleet status` shows it as interrupted.
    state          text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    started_by     text NOT NULL DEFAULT current_user,
    -- migrate: the migrations folder as given; enqueue: the job file.
    source         text,
    -- migrate: [{"version": n, "checksum": "hex"}] of the folder's up migrations, which resume
    -- compares the folder against; enqueue: {"sha384": "hex"}.
    checksums      jsonb,
    -- canary, parallel, on_error, lock_timeout_ms, lock_retries, strict, source_path, config, ...
    options        jsonb NOT NULL,
    -- The targets file as given, or --targets-query.
    targets_origin text NOT NULL,
    -- The fleet process's, every few seconds while it runs.
    heartbeat_at   timestamptz
);

CREATE TABLE @schema@.fleet_targets (
    run_id           bigint NOT NULL REFERENCES @schema@.fleet_runs (id) ON DELETE CASCADE,
    -- Its place in the targets file (0-based): the order targets start in.
    position         integer NOT NULL,
    name             text NOT NULL,
    -- The connection string WITHOUT its password, which is never stored: resume finds it in
    -- .pgpass or PGPASSWORD, or in the targets file given again.
    connection       text NOT NULL,
    schema_name      text,
    database_key     text NOT NULL,
    canary           boolean NOT NULL DEFAULT false,
    state            text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
    -- The versions this run applied on the target, in order (across resumes), each recorded as
    -- soon as it is applied, so that a run whose process died still says what it did.
    applied_versions bigint[] NOT NULL DEFAULT '{}',
    -- One line: what failed, naming the migration's version and file when one did.
    error            text,
    started_at       timestamptz,
    finished_at      timestamptz,
    -- How long the target's session waited for sqlx's migration lock (an application, or
    -- another migrate, holding it), in its last attempt.
    lock_wait_ms     double precision,
    attempts         integer NOT NULL DEFAULT 0,
    -- enqueue: the job in the target's own queue.
    job_id           bigint,
    PRIMARY KEY (run_id, name)
);

CREATE INDEX fleet_runs_started ON @schema@.fleet_runs (started_at DESC, id DESC);

REVOKE ALL ON @schema@.fleet_runs, @schema@.fleet_targets FROM PUBLIC;
