-- The scheduled recompute grows with changes, not with users (issue 27, §4).
--
-- shared.recompute_dirty is the set of users whose unlock inputs changed since
-- the recompute last looked at them. Triggers add to it in the transaction that
-- makes the change, so a change and its mark commit or roll back together. A
-- change can give a user an unlock only by making a progress row locked (a
-- row inserted, or one locked again), making one completed, or adding a field
-- output: those mark. Unlocking, reopening, saving a draft, deleting outputs
-- or rows never can (the recompute never locks anything again), and do not.
--
-- `mark` comes from a sequence and is renewed by every new mark. A run reads
-- the marks of a batch, recomputes the batch's users, and deletes only the
-- marks still as it read them: a mark renewed meanwhile (a change the batch's
-- statements may not have seen) stays for the next run. The run's own inserts
-- (`fasttrack.recompute` set in its transactions) need no mark: the same
-- transaction unlocks what they make possible.
--
-- A mark holds no content: a user id and a number, gone within one run or
-- with the person (the foreign key's cascade).

CREATE SEQUENCE shared.recompute_marks;

CREATE TABLE shared.recompute_dirty (
    user_id UUID PRIMARY KEY REFERENCES shared.users(id) ON DELETE CASCADE,
    mark BIGINT NOT NULL DEFAULT nextval('shared.recompute_marks')
);
ALTER SEQUENCE shared.recompute_marks OWNED BY shared.recompute_dirty.mark;

-- The recompute reads marks and takes them off; only the triggers below add
-- them. It claims a mark with FOR UPDATE SKIP LOCKED (never waiting for a
-- change that is marking it again), which needs UPDATE on a column: `mark`,
-- whose renewal gives no more than DELETE does (a run's work, once more).
GRANT SELECT, DELETE, UPDATE (mark) ON shared.recompute_dirty TO fasttrack_runtime;

-- What the recompute keeps between runs: the registry it last swept all users
-- with. A run whose registry differs (tools added, requirements changed)
-- sweeps every user, as a run asked to (`--full`, `{"full": true}`) does.
CREATE TABLE shared.recompute_state (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    registry_fingerprint TEXT,
    full_sweep_at TIMESTAMP WITH TIME ZONE
);
INSERT INTO shared.recompute_state DEFAULT VALUES;
GRANT SELECT, UPDATE (registry_fingerprint, full_sweep_at) ON shared.recompute_state TO fasttrack_runtime;

-- A progress row updated into locked or completed: its user.
CREATE FUNCTION shared.mark_progress_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF current_setting('fasttrack.recompute', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO shared.recompute_dirty AS d (user_id) VALUES (NEW.user_id)
    ON CONFLICT (user_id) DO UPDATE SET mark = excluded.mark;
    RETURN NULL;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.mark_progress_change() FROM PUBLIC;

CREATE TRIGGER user_progress_mark_update AFTER UPDATE ON shared.user_progress
    FOR EACH ROW WHEN (NEW.status IN ('locked', 'completed')
                       AND (OLD.status IS DISTINCT FROM NEW.status
                            OR OLD.user_id IS DISTINCT FROM NEW.user_id
                            OR OLD.tool_slug IS DISTINCT FROM NEW.tool_slug))
    EXECUTE FUNCTION shared.mark_progress_change();

-- Progress rows inserted locked or completed (a new user's, a tool's first
-- row): their users, once per statement.
CREATE FUNCTION shared.mark_progress_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF current_setting('fasttrack.recompute', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO shared.recompute_dirty AS d (user_id)
    SELECT DISTINCT a.user_id FROM added a WHERE a.status IN ('locked', 'completed')
    ORDER BY 1
    ON CONFLICT (user_id) DO UPDATE SET mark = excluded.mark;
    RETURN NULL;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.mark_progress_inserted() FROM PUBLIC;

CREATE TRIGGER user_progress_mark_insert AFTER INSERT ON shared.user_progress
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION shared.mark_progress_inserted();

-- Field outputs inserted into a tool schema: the users whose submissions they
-- belong to, once per statement. (A save's statement fires it even when it
-- inserts no output, a draft's: the first check makes that cheap.)
CREATE FUNCTION shared.mark_outputs_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF current_setting('fasttrack.recompute', true) = 'on'
       OR NOT EXISTS (SELECT 1 FROM added) THEN
        RETURN NULL;
    END IF;
    EXECUTE format(
        'INSERT INTO shared.recompute_dirty AS d (user_id)
         SELECT DISTINCT s.user_id FROM added a JOIN %I.submissions s ON s.id = a.submission_id
         ORDER BY 1
         ON CONFLICT (user_id) DO UPDATE SET mark = excluded.mark',
        TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.mark_outputs_inserted() FROM PUBLIC;

-- The trigger every tool schema gets (`migrate` checks it is there).
CREATE FUNCTION shared.mark_tool_schema(schema_name text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF schema_name IS NULL
       OR schema_name !~ '^sprint_[0-9]{2}_[a-z0-9_]+$'
       OR octet_length(schema_name) > 63 THEN
        RAISE EXCEPTION 'invalid tool schema name: %', schema_name
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER field_outputs_mark_insert AFTER INSERT ON %I.field_outputs '
                   'REFERENCING NEW TABLE AS added '
                   'FOR EACH STATEMENT EXECUTE FUNCTION shared.mark_outputs_inserted()', schema_name);
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.mark_tool_schema(text) FROM PUBLIC;

-- create_tool_schema as 0007 left it, plus the trigger.
CREATE OR REPLACE FUNCTION shared.create_tool_schema(schema_name text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM shared.create_tool_schema_tables(schema_name);
    PERFORM shared.grant_tool_schema(schema_name);
    PERFORM shared.mark_tool_schema(schema_name);
END;
$fn$;

DO $$
DECLARE
    tool_schema text;
BEGIN
    FOR tool_schema IN
        SELECT nspname FROM pg_namespace
        WHERE nspname ~ '^sprint_[0-9]{2}_[a-z0-9_]+$'
          AND to_regclass(format('%I.field_outputs', nspname)) IS NOT NULL
    LOOP
        PERFORM shared.mark_tool_schema(tool_schema);
    END LOOP;
END;
$$;

-- The funnel's counts (0019) are kept by triggers. Counting them all again
-- from the progress reads every user's rows, so only a full sweep does it
-- (it also corrects the drift 0019 describes); the other runs compact: the
-- delta rows (`delta`, as the triggers insert them) are summed into one row
-- per organization, tool and status, found through a partial index.
ALTER TABLE shared.funnel_counts ADD COLUMN delta BOOLEAN NOT NULL DEFAULT true;
CREATE INDEX idx_funnel_counts_deltas ON shared.funnel_counts (organization_id) WHERE delta;

CREATE OR REPLACE FUNCTION shared.recount_funnel() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rows bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('shared.recount_funnel'));
    WITH gone AS (
        DELETE FROM shared.funnel_counts RETURNING 1
    ), exact AS (
        INSERT INTO shared.funnel_counts (organization_id, tool_slug, status, n, delta)
        SELECT u.organization_id, p.tool_slug, p.status, count(*), false
        FROM shared.user_progress p JOIN shared.users u ON u.id = p.user_id
        GROUP BY u.organization_id, p.tool_slug, p.status
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM exact) + 0 * (SELECT count(*) FROM gone) INTO rows;
    RETURN rows;
END;
$fn$;

-- The deltas, summed: every row of a (organization, tool, status) that has a
-- delta is replaced by their sum (none when it is 0). Rows of transactions
-- that commit after this statement's snapshot stay deltas, for the next run.
-- It reads the delta rows through their partial index, then the table once
-- (its size is organizations x tools x statuses, not members).
-- Returns how many delta rows were compacted.
CREATE FUNCTION shared.compact_funnel() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    compacted bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('shared.recount_funnel'));
    WITH keys AS MATERIALIZED (
        SELECT DISTINCT coalesce(organization_id, '00000000-0000-0000-0000-000000000000'::uuid) AS organization,
               tool_slug, status
        FROM shared.funnel_counts WHERE delta
    ), gone AS (
        -- Joined by hash on the key (null organizations as the nil uuid): an
        -- organization filter (`= ANY` an array of them) was checked per row
        -- against the whole array, 0.7 s for 2,500 keys.
        DELETE FROM shared.funnel_counts f USING keys k
        WHERE coalesce(f.organization_id, '00000000-0000-0000-0000-000000000000'::uuid) = k.organization
          AND f.tool_slug = k.tool_slug AND f.status = k.status
        RETURNING f.organization_id, f.tool_slug, f.status, f.n, f.delta
    ), merged AS (
        INSERT INTO shared.funnel_counts (organization_id, tool_slug, status, n, delta)
        SELECT organization_id, tool_slug, status, sum(n), false
        FROM gone
        GROUP BY organization_id, tool_slug, status
        HAVING sum(n) <> 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone WHERE delta) + 0 * (SELECT count(*) FROM merged) INTO compacted;
    RETURN compacted;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.compact_funnel() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shared.compact_funnel() TO fasttrack_runtime;
