-- The queue's part of Godwit's schema (owner `queue`): the jobs, their controls, the workers and
-- each attempt's error. A new install, at the version SchemaPart.queue names; later changes are
-- upgrade steps of their own (Resources/queue_upgrade_N.sql), never edits of this file alone.
--
-- @schema@ stands for the schema's quoted name and @channel@ for the NOTIFY channel as a string
-- literal; the installer substitutes both, and runs this file in the transaction that records it.
--
-- Rights. Nothing here is open to PUBLIC. The role that installs the schema (the worker's) owns
-- everything. Other roles get one of three sets of rights from the owner, through
-- grant_read(role), grant_enqueue(role) and grant_control(role) (in the jobs part, since they
-- cover every owner's objects). Every job records the role that inserted it (enqueued_by,
-- stamped by a trigger, so the inserting session cannot choose it), and the worker runs the job
-- with that role's rights, never its own.
--
-- A parallel job (kind batched_parallel) is a parent whose state is derived from its children,
-- its shards (parent_id). The queue knows that much of it: the insert trigger checks who may
-- name a parent, and the controls act on a parent's shards. What makes the shards and derives
-- the parent's state is the jobs part's.

CREATE TYPE @schema@.job_state AS ENUM ('queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled');

-- The queue. Rows change state a few times in their life; what changes often (progress) lives
-- in job_progress, and no index covers heartbeat_at, so heartbeats are HOT updates.
CREATE TABLE @schema@.jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL,
    name          text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    state         @schema@.job_state NOT NULL DEFAULT 'queued',
    priority      integer NOT NULL DEFAULT 0,
    run_at        timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    last_error    text,
    worker_id     text,
    lease_token   bigint NOT NULL DEFAULT 0,
    heartbeat_at  timestamptz,
    control       text CHECK (control IN ('pause', 'cancel')),
    result        jsonb,
    enqueued_by   name NOT NULL DEFAULT current_user,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    parent_id     bigint REFERENCES @schema@.jobs (id) ON DELETE CASCADE,
    last_error_detail text
);
COMMENT ON COLUMN @schema@.jobs.lease_token IS
    'Grows with every claim; every write a worker makes for a job is fenced by state = running and this token.';
COMMENT ON COLUMN @schema@.jobs.control IS
    'A pause or cancel requested while the job runs; the worker acts on it at the next checkpoint.';
COMMENT ON COLUMN @schema@.jobs.enqueued_by IS
    'The role that inserted the job (current_user at insert, stamped by a trigger); the job runs with its rights.';

-- Serves the claim query: queued jobs by priority, then due time.
CREATE INDEX jobs_claim_idx ON @schema@.jobs (priority DESC, run_at, id) WHERE state = 'queued';
-- Serves lease rescue and heartbeats.
CREATE INDEX jobs_running_idx ON @schema@.jobs (id) WHERE state = 'running';
-- Serves the clean-up of finished jobs.
CREATE INDEX jobs_finished_idx ON @schema@.jobs (finished_at) WHERE finished_at IS NOT NULL;

COMMENT ON COLUMN @schema@.jobs.parent_id IS
    'The parallel job (kind batched_parallel) this batched job is a shard of; its state is derived from its shards.';
COMMENT ON COLUMN @schema@.jobs.last_error_detail IS
    'The server''s DETAIL of last_error, kept apart since it may quote row values; readers cannot see it.';
CREATE INDEX jobs_parent_idx ON @schema@.jobs (parent_id) WHERE parent_id IS NOT NULL;

-- Whoever inserts a job, however (a function, a plain INSERT), the job carries their role. A
-- parallel job is inserted as running and never becomes queued, so no claim ever takes it and
-- no rescue sees it (it has no heartbeat); a shard is a batched job inserted by the same role
-- as its parent (so it runs with the same rights).
CREATE FUNCTION @schema@.stamp_enqueued_by() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    parent record;
BEGIN
    NEW.enqueued_by := current_user;
    IF NEW.kind = 'batched_parallel' THEN
        NEW.state := 'running';
    END IF;
    IF NEW.parent_id IS NOT NULL THEN
        SELECT j.kind, j.enqueued_by INTO parent FROM @schema@.jobs j WHERE j.id = NEW.parent_id;
        IF parent.kind IS DISTINCT FROM 'batched_parallel' OR NEW.kind <> 'batched' OR parent.enqueued_by <> current_user THEN
            RAISE EXCEPTION 'job % is not a parallel job of yours: only batched shards of a parallel job its enqueuer made may name it as parent',
                NEW.parent_id USING ERRCODE = '42501';
        END IF;
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER jobs_stamp_enqueued_by BEFORE INSERT ON @schema@.jobs
    FOR EACH ROW EXECUTE FUNCTION @schema@.stamp_enqueued_by();

CREATE FUNCTION @schema@.notify_jobs() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$fn$;

-- Every insert or requeue wakes the workers, in the same transaction, so a plain INSERT from
-- psql works too. Identical notifications in one transaction fold into one.
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF state, run_at ON @schema@.jobs
    FOR EACH ROW WHEN (NEW.state = 'queued')
    EXECUTE FUNCTION @schema@.notify_jobs(@channel@);

-- Runs with the caller's rights: the job is theirs.
CREATE FUNCTION @schema@.enqueue(
    kind text, name text, payload jsonb DEFAULT '{}'::jsonb, priority integer DEFAULT 0,
    run_at timestamptz DEFAULT now(), max_attempts integer DEFAULT 10
) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $fn$
    INSERT INTO @schema@.jobs (kind, name, payload, priority, run_at, max_attempts)
    VALUES (kind, name, payload, priority, run_at, max_attempts)
    RETURNING id
$fn$;

-- The controls run with the owner's rights, so a controller needs no right on the table; they
-- change a job's state only, never what it runs or as whom. On a parallel job they act on its
-- shards, and the parent's state follows at COMMIT (the jobs part's shard trigger). The shards
-- are locked first, in id order, so two controls of one job cannot deadlock, and they wait for a
-- claim or an outcome in flight rather than skip it: each shard's change is one statement that
-- reads its current state. A control on one shard acts on that shard alone.
CREATE FUNCTION @schema@.pause(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        UPDATE @schema@.jobs
        SET state = CASE WHEN state = 'queued' THEN 'paused'::@schema@.job_state ELSE state END,
            control = CASE WHEN state = 'running' THEN 'pause' ELSE control END
        WHERE parent_id = job_id AND (state = 'queued' OR (state = 'running' AND control IS NULL));
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs SET state = 'paused' WHERE id = job_id AND state = 'queued';
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = 'pause' WHERE id = job_id AND state = 'running' AND control IS NULL;
    RETURN FOUND;
END
$fn$;

-- resume and retry, for whoever may restart the job (below). A parallel job with a failed shard
-- is not resumed (its shards would pause again): retry it.
CREATE FUNCTION @schema@.resume_any(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE parent_id = job_id AND state = 'failed') THEN
            RETURN false;
        END IF;
        UPDATE @schema@.jobs
        SET state = CASE WHEN state = 'paused' THEN 'queued'::@schema@.job_state ELSE state END,
            run_at = CASE WHEN state = 'paused' THEN now() ELSE run_at END,
            control = CASE WHEN state = 'running' THEN NULL ELSE control END
        WHERE parent_id = job_id AND (state = 'paused' OR (state = 'running' AND control = 'pause'));
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs SET state = 'queued', run_at = now() WHERE id = job_id AND state = 'paused';
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = NULL WHERE id = job_id AND state = 'running' AND control = 'pause';
    RETURN FOUND;
END
$fn$;

CREATE FUNCTION @schema@.cancel(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        UPDATE @schema@.jobs
        SET state = CASE WHEN state IN ('queued', 'paused') THEN 'cancelled'::@schema@.job_state ELSE state END,
            finished_at = CASE WHEN state IN ('queued', 'paused') THEN now() ELSE finished_at END,
            control = CASE WHEN state = 'running' THEN 'cancel' END
        WHERE parent_id = job_id
          AND (state IN ('queued', 'paused') OR (state = 'running' AND control IS DISTINCT FROM 'cancel'));
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs SET state = 'cancelled', finished_at = now(), control = NULL
    WHERE id = job_id AND state IN ('queued', 'paused');
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = 'cancel'
    WHERE id = job_id AND state = 'running' AND control IS DISTINCT FROM 'cancel';
    RETURN FOUND;
END
$fn$;

-- Retrying a failed or cancelled parallel job requeues its failed, cancelled and paused shards;
-- each resumes from its own checkpoint. Succeeded shards stay done.
CREATE FUNCTION @schema@.retry_any(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND state IN ('failed', 'cancelled')) THEN
            RETURN false;
        END IF;
        UPDATE @schema@.jobs
        SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, control = NULL
        WHERE parent_id = job_id AND state IN ('failed', 'cancelled', 'paused');
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs
    SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, control = NULL
    WHERE id = job_id AND state IN ('failed', 'cancelled');
    RETURN FOUND;
END
$fn$;

-- An sql job's success, recorded inside the script's own transaction: the script and its success
-- commit together or not at all, so a crash between them cannot run the script twice.
CREATE FUNCTION @schema@.job_succeeded(job_id bigint, lease bigint, job_result jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    UPDATE @schema@.jobs s SET state = 'succeeded', result = job_result, finished_at = now(), heartbeat_at = NULL,
        control = NULL
    WHERE s.id = job_id AND s.enqueued_by = session_user AND s.lease_token = lease AND s.state = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job %: the lease is no longer this session''s', job_id USING ERRCODE = 'GW001';
    END IF;
END
$fn$;

-- Resuming or retrying a job makes it run again, with its enqueuer's rights: so only a login
-- that could act as the enqueuer (a member of its role) or as the queue's owner may do it.
-- Pause and cancel stay open to every controller. session_user, not current_user: inside these
-- functions current_user is the owner; the login is who is asking, and a login that is a
-- member of the enqueuer's role could run the job's SQL as that role anyway.
CREATE FUNCTION @schema@.may_restart(job_id bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT pg_has_role(session_user, current_user, 'MEMBER')
        OR NOT EXISTS (SELECT 1 FROM @schema@.jobs j WHERE j.id = job_id)
        OR EXISTS (SELECT 1 FROM @schema@.jobs j JOIN pg_roles r ON r.rolname = j.enqueued_by
                   WHERE j.id = job_id AND pg_has_role(session_user, r.oid, 'MEMBER'))
$fn$;

-- resume and retry check may_restart, then do the work of resume_any and retry_any, which only
-- the owner may call. A job another has resumed from (the jobs part's resume_batched_from) is not
-- retried: its keys are the new job's now.
CREATE FUNCTION @schema@.resume(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT @schema@.may_restart(job_id) THEN
        RAISE EXCEPTION 'job % was enqueued by another role: resuming it needs membership in that role, or the queue owner''s',
            job_id USING ERRCODE = '42501';
    END IF;
    RETURN @schema@.resume_any(job_id);
END
$fn$;

CREATE FUNCTION @schema@.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    successor text;
BEGIN
    IF NOT @schema@.may_restart(job_id) THEN
        RAISE EXCEPTION 'job % was enqueued by another role: retrying it needs membership in that role, or the queue owner''s',
            job_id USING ERRCODE = '42501';
    END IF;
    SELECT j.result->>'resumed_by' INTO successor FROM @schema@.jobs j WHERE j.id = job_id AND j.result ? 'resumed_by';
    IF successor IS NOT NULL THEN
        RAISE EXCEPTION 'job % was resumed by job %, which carries on from its checkpoint: retry that one', job_id, successor
            USING ERRCODE = '55000';
    END IF;
    RETURN @schema@.retry_any(job_id);
END
$fn$;

-- What only the enqueuer, the controllers and the owner may read: a job's payload (an sql
-- script, migration files, which may hold a CREATE ROLE ... PASSWORD), its result (backup
-- paths) and the server's DETAIL of its last error, which may quote rows of tables a reader
-- cannot SELECT ("Failing row contains (...)"). last_error keeps the message without it.
-- A reader's view of those: rows of the jobs whose enqueuer it is a member of, and every row
-- for a controller or the owner. current_user is the reader's role here (a view changes only
-- whose rights read the table), and security_barrier keeps a reader's own functions from seeing
-- rows before the filter has run.
CREATE VIEW @schema@.job_details WITH (security_barrier) AS
SELECT j.id, j.payload, j.result, j.last_error_detail
FROM @schema@.jobs j
WHERE pg_catalog.has_function_privilege(current_user, '@schema@.retry(bigint)', 'EXECUTE')
   OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
              WHERE r.rolname = j.enqueued_by AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER'));
REVOKE ALL ON @schema@.job_details FROM PUBLIC;

-- The workers, one row each, written by the worker itself (the queue owner): on start, with
-- every heartbeat, and on an orderly exit. A row whose heartbeat_at is old and whose stopped_at
-- is NULL is a worker that died without saying so; its running jobs are marked stale in
-- progress until their lease expires and a rescue takes them.
CREATE TABLE @schema@.workers (
    id            text PRIMARY KEY,
    login         name NOT NULL DEFAULT session_user,
    host          text,
    pid           integer,
    version       text,
    concurrency   integer,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);
COMMENT ON TABLE @schema@.workers IS
    'One row a worker: its heartbeat, and stopped_at once it exited in order.';

-- Each attempt's error, kept after the job has moved on: jobs.last_error holds only the newest
-- and is cleared when the job succeeds. error_detail is the server's DETAIL, which may quote row
-- values, and is not for readers (as jobs.last_error_detail).
CREATE TABLE @schema@.job_errors (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        bigint NOT NULL REFERENCES @schema@.jobs (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    worker_id     text,
    error         text NOT NULL,
    error_detail  text,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_errors_job_idx ON @schema@.job_errors (job_id, id);

-- How long a running job's worker may go unseen before the job is marked stale. A worker beats
-- every two seconds at most (a third of its lease when that is shorter), so fifteen seconds is
-- several missed beats, and shorter than the default lease: a job that looks stale is one whose
-- worker is gone, and the rescue that follows says so in its error. Readers
-- may call it: the progress view does, with their rights.
CREATE FUNCTION @schema@.stale_after() RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$ SELECT interval '15 seconds' $fn$;
REVOKE ALL ON FUNCTION @schema@.stale_after() FROM PUBLIC;

-- Every attempt's error lands in job_errors, whatever path wrote it: the worker's failure and
-- retry outcomes, a rescue after an expired lease, a parallel job's failed shard, and any path
-- added later. A trigger catches them all in one place. It fires only when last_error is in an
-- UPDATE's SET list (claims and heartbeats never name it), and its WHEN clause is evaluated
-- without calling the function, so the claim, heartbeat and success paths pay nothing for it.
-- A new error is one that differs from the last, or one written as a running attempt ends (the
-- same message twice in a row is two attempts).
CREATE FUNCTION @schema@.record_job_error() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    INSERT INTO @schema@.job_errors (job_id, attempt, worker_id, error, error_detail)
    VALUES (NEW.id, OLD.attempts, OLD.worker_id, NEW.last_error, NEW.last_error_detail);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER jobs_record_error AFTER UPDATE OF last_error ON @schema@.jobs
FOR EACH ROW WHEN (NEW.last_error IS NOT NULL AND (NEW.last_error IS DISTINCT FROM OLD.last_error OR OLD.state = 'running'))
EXECUTE FUNCTION @schema@.record_job_error();

-- A job that succeeds has no error: last_error and its detail are cleared by whichever path
-- records the success (the worker's, an sql job's job_succeeded, a parallel job's last shard).
-- The history stays in job_errors.
CREATE FUNCTION @schema@.clear_error_on_success() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    NEW.last_error := NULL;
    NEW.last_error_detail := NULL;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER jobs_clear_error_on_success BEFORE UPDATE OF state ON @schema@.jobs
FOR EACH ROW WHEN (NEW.state = 'succeeded' AND (NEW.last_error IS NOT NULL OR NEW.last_error_detail IS NOT NULL))
EXECUTE FUNCTION @schema@.clear_error_on_success();

-- A trigger function's EXECUTE is checked when the trigger is created, not when it fires.
REVOKE ALL ON FUNCTION @schema@.record_job_error(), @schema@.clear_error_on_success() FROM PUBLIC;

REVOKE ALL ON FUNCTION @schema@.resume(bigint), @schema@.retry(bigint), @schema@.resume_any(bigint),
    @schema@.retry_any(bigint), @schema@.job_succeeded(bigint, bigint, jsonb), @schema@.may_restart(bigint) FROM PUBLIC;
-- Functions are executable by PUBLIC unless revoked; nothing in this part is.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @schema@ FROM PUBLIC;
REVOKE ALL ON @schema@.jobs FROM PUBLIC;
