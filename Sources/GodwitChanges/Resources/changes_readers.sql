-- The reader evidence: per column a change drops, when a statement naming it last ran, as the
-- worker's samples of pg_stat_statements saw it, and the application names of the sessions
-- seen running such statements.
--
-- One of the changes part's files (owner `changes`), which install together in one transaction
-- in the order `SchemaPart.changes` names them. @schema@ stands for the schema's quoted name;
-- the installer substitutes it.

CREATE TABLE @schema@.change_readers (
    change_name        text NOT NULL REFERENCES @schema@.change_records (name) ON DELETE CASCADE,
    column_name        text NOT NULL,
    -- The last sample in which a statement naming the column had run since the sample before.
    last_seen_at       timestamptz,
    -- The start of the window over which the samples were continuous and complete: restarted
    -- by a gap between samples, a reset of pg_stat_statements or entries it evicted.
    window_started_at  timestamptz,
    -- Why the window last (re)started, in words (`the first sample`, `a gap of 2 min between
    -- samples`, ...), for change_blockers' line.
    window_reason      text,
    sampled_at         timestamptz,
    application_names  text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (change_name, column_name)
);

-- The statements seen naming a dropped column, with their calls at the last sample: the
-- deltas between samples are the evidence. Keyed as pg_stat_statements keys its entries.
CREATE TABLE @schema@.change_reader_statements (
    change_name  text NOT NULL REFERENCES @schema@.change_records (name) ON DELETE CASCADE,
    column_name  text NOT NULL,
    userid       oid NOT NULL,
    dbid         oid NOT NULL,
    queryid      bigint NOT NULL,
    toplevel     boolean NOT NULL,
    calls        bigint NOT NULL,
    query        text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,
    PRIMARY KEY (change_name, column_name, userid, dbid, queryid, toplevel)
);

-- What pg_stat_statements said at the last sample, to tell a reset or an eviction.
CREATE TABLE @schema@.change_sampling (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    sampled_at   timestamptz,
    dealloc      bigint,
    stats_reset  timestamptz,
    available    boolean NOT NULL DEFAULT false,
    -- Why sampling could not run (pg_stat_statements missing, no right to read it), or NULL.
    unavailable_reason text
);
