-- Who besides the schema's owner may run changes: grant_change(role), the row security that
-- keeps one granted role off another's changes, and the one function abort calls for its jobs.
--
-- One of the changes part's files (owner `changes`), which install together in one transaction
-- in the order `SchemaPart.changes` names them; alone, it is the part's upgrade from version 1
-- to 2. @schema@ stands for the schema's quoted name; the installer substitutes it.
--
-- Whose writes are whose. `change plan|start|complete|abort` run in the session of whoever runs
-- them (the starter, typically a team's migration role that owns the table but not this
-- schema): start inserts the change's row and enqueues its two jobs, complete and abort move
-- its phase. Everything else in change_records is the worker's: ChangeSupervisor's phase
-- moves, and ChangeJob's cursor, counts and steps, which it writes through the worker's own
-- pool (the schema owner's login), fenced by the job's lease; only the finish job's SQL (the
-- verification's reads, the index builds, the validations) runs in the starter's sessions. The
-- reader evidence (change_readers, change_reader_statements, change_sampling) is the worker's
-- too: a granted role's complete does not sample, it waits for the worker's next sample and
-- decides on that (ChangeCompletion). So a granted role gets no right on those three tables
-- but to read when the last sample was, and none on what the worker writes in change_records.
--
-- Why row security and not SECURITY DEFINER functions for start, complete and abort. A change's
-- row holds the SQL complete and abort run (`statements`), written by its starter: it is the
-- starter's code, so only a session that could act as the starter may run it, as only the
-- enqueuer's sessions run a job's SQL. The commands keep their own transactions and row locks
-- (complete samples, decides and runs the DDL holding the row), and the policies below are the
-- rule PostgreSQL itself enforces under them: a granted role may update a change in flight
-- only if its login is a member of the change's `started_by` (`pg_has_role(session_user, ...,
-- 'MEMBER')`, as the queue's may_restart asks of a resume), and (a trigger, since a policy
-- does not see the old row) may move it only to a phase complete or abort sets. Column grants keep it off what it has no business writing:
-- `started_by` (the default, the login, is the only value), the verification's counts and
-- times, the indexes' and constraints' times, `ready_at`. So it cannot mark its own change
-- verified or ready past the gate (change_blockers reads the counts, the times and the
-- catalog, not only the phase), nor touch another role's change at all. The schema's owner
-- bypasses row security as the table's owner: the worker and the owner's own commands are
-- unchanged, and the CLI refuses to complete or abort a change for a login that is not a
-- member of its starter, whoever it is (ChangeRights.checkStarter).

ALTER TABLE @schema@.change_records ENABLE ROW LEVEL SECURITY;

-- Every change is visible, as the changes view shows them to every reader: plan and start
-- check a new change against those in flight on the same table, whoever started them.
CREATE POLICY change_records_read ON @schema@.change_records FOR SELECT USING (true);

-- start: a change of one's own login, in the phase start records, whose jobs are its own (so
-- the supervisor, releasing a change's finish job, never releases another role's job).
CREATE POLICY change_records_start ON @schema@.change_records FOR INSERT
    WITH CHECK (
        started_by = session_user
        AND phase IN ('backfilling', 'verifying')
        AND EXISTS (SELECT 1 FROM @schema@.jobs j WHERE j.id = finish_job_id AND j.enqueued_by::text = started_by)
        AND (backfill_job_id IS NULL
             OR EXISTS (SELECT 1 FROM @schema@.jobs j WHERE j.id = backfill_job_id AND j.enqueued_by::text = started_by)));

-- complete and abort: a change in flight whose starter the login is a member of. Which phase it
-- may move to is the trigger's to say, since a policy does not see the row's old phase.
CREATE POLICY change_records_finish ON @schema@.change_records FOR UPDATE
    USING (
        phase NOT IN ('completed', 'aborted')
        AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                    WHERE r.rolname = started_by AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')))
    WITH CHECK (true);

-- A role other than the table's owner (whose sessions are the worker's) moves a change only
-- as complete and abort do: to completing, completed or aborted. Never to verifying or ready,
-- which are the worker's to set once it has verified.
CREATE FUNCTION @schema@.change_records_phase_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NEW.phase IS DISTINCT FROM OLD.phase AND NEW.phase NOT IN ('completing', 'completed', 'aborted')
        AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE')
    THEN
        RAISE EXCEPTION 'change %: only the worker moves a change to %', OLD.name, NEW.phase
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER change_records_phase_guard BEFORE UPDATE OF phase ON @schema@.change_records
    FOR EACH ROW EXECUTE FUNCTION @schema@.change_records_phase_guard();

-- abort's cancel of the change's backfill and finish jobs, for a login that may act as its
-- starter (or the owner): cancel(bigint) itself is grant_control's, open on every job.
-- Returns how many of the two it cancelled or asked to stop.
CREATE FUNCTION @schema@.change_cancel_jobs(change_name text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    c record;
    cancelled integer := 0;
BEGIN
    SELECT r.backfill_job_id, r.finish_job_id, r.started_by INTO c
    FROM @schema@.change_records r WHERE r.name = change_cancel_jobs.change_name;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF NOT (pg_has_role(session_user, current_user, 'MEMBER')
            OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = c.started_by AND pg_has_role(session_user, r.oid, 'MEMBER')))
    THEN
        RAISE EXCEPTION 'change % was started by role %: cancelling its jobs needs membership in that role, or the schema owner''s',
            change_cancel_jobs.change_name, c.started_by USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF c.backfill_job_id IS NOT NULL AND @schema@.cancel(c.backfill_job_id) THEN
        cancelled := cancelled + 1;
    END IF;
    IF c.finish_job_id IS NOT NULL AND @schema@.cancel(c.finish_job_id) THEN
        cancelled := cancelled + 1;
    END IF;
    RETURN cancelled;
END
$fn$;

-- What a role needs to plan, start, complete and abort changes, granted by the owner:
-- SELECT @schema@.grant_change('app_migrator'). grant_enqueue's rights (start enqueues the
-- backfill and the finish job, and the backfill's batches call the fence and checkpoint in the
-- starter's sessions); reading the columns the commands read; inserting the columns start
-- writes; updating the columns complete and abort write, under the policies above; when the
-- worker last sampled the readers; and the cancel of a change's own jobs.
CREATE FUNCTION @schema@.grant_change(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM @schema@.grant_enqueue(grantee);
    EXECUTE format('GRANT SELECT (name, table_name, table_oid, phase, definition, statements, backfill_job_id,
        finish_job_id, started_by) ON @schema@.change_records TO %s', grantee);
    EXECUTE format('GRANT INSERT (name, table_name, table_oid, key_column, phase, file, source, definition, statements,
        backfill_job_id, finish_job_id) ON @schema@.change_records TO %s', grantee);
    EXECUTE format('GRANT UPDATE (phase, reader_check_waiver, migration_version, completed_at, aborted_at, error,
        updated_at) ON @schema@.change_records TO %s', grantee);
    EXECUTE format('GRANT SELECT (sampled_at) ON @schema@.change_sampling TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.change_cancel_jobs(text) TO %s', grantee);
END
$fn$;

REVOKE ALL ON FUNCTION @schema@.change_cancel_jobs(text), @schema@.grant_change(regrole),
    @schema@.change_records_phase_guard() FROM PUBLIC;
