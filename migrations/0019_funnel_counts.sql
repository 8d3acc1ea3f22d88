-- The funnel (GET /organizations/{id}/funnel and /funnel) from counts kept as
-- the progress changes, rather than from every member's 31 progress rows:
-- for a 10,000-member organization that was 310,000 rows per read (hundreds
-- of milliseconds); it is now that organization's few hundred count rows.
--
-- shared.funnel_counts holds signed deltas: (organization, tool, status, n).
-- A tool's count of members in a status is the sum of n over its rows. Rows
-- are only ever inserted by the triggers below, never updated, so concurrent
-- saves never wait on one another for a counter row (no hot rows, no lock
-- order, no deadlocks). shared.recount_funnel() replaces them all with one
-- exact row per (organization, tool, status) from the progress itself: the
-- scheduled recompute calls it each run, which both compacts the deltas and
-- corrects any drift (a recompute unlock racing a move between
-- organizations can count one row in the organization the member left).
--
-- A count names no person: organizations, tools, statuses and numbers only.
-- The export and the erasure have nothing to do here.

CREATE TABLE shared.funnel_counts (
    -- Null: users in no organization (they count in everyone's funnel only).
    organization_id UUID,
    tool_slug VARCHAR(255) NOT NULL,
    status VARCHAR(50) NOT NULL,
    n INTEGER NOT NULL
);
CREATE INDEX idx_funnel_counts_organization ON shared.funnel_counts (organization_id);

-- The staff reports read it; only the functions below write it.
GRANT SELECT ON shared.funnel_counts TO fasttrack_runtime;

-- A progress row inserted, deleted, or changed in status: its member's
-- organization loses the old status and gains the new one. A row deleted with
-- its user (the foreign key's cascade) is counted out by the user's trigger
-- below, before the delete; here the user is then gone and nothing is added.
CREATE FUNCTION shared.count_progress() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    member uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
    org uuid;
BEGIN
    SELECT u.organization_id INTO org FROM shared.users u WHERE u.id = member;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO shared.funnel_counts (organization_id, tool_slug, status, n)
        VALUES (org, OLD.tool_slug, OLD.status, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO shared.funnel_counts (organization_id, tool_slug, status, n)
        VALUES (org, NEW.tool_slug, NEW.status, 1);
    END IF;
    RETURN NULL;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.count_progress() FROM PUBLIC;

CREATE TRIGGER user_progress_count_insert AFTER INSERT ON shared.user_progress
    FOR EACH ROW EXECUTE FUNCTION shared.count_progress();
CREATE TRIGGER user_progress_count_update AFTER UPDATE ON shared.user_progress
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.tool_slug IS DISTINCT FROM NEW.tool_slug
                       OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION shared.count_progress();
CREATE TRIGGER user_progress_count_delete AFTER DELETE ON shared.user_progress
    FOR EACH ROW EXECUTE FUNCTION shared.count_progress();

-- A member who moves takes their progress from one organization's counts to
-- the other's; a user deleted takes it out (before the cascade deletes the
-- rows, while they can still be read).
CREATE FUNCTION shared.count_member() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO shared.funnel_counts (organization_id, tool_slug, status, n)
        SELECT OLD.organization_id, p.tool_slug, p.status, -count(*)
        FROM shared.user_progress p WHERE p.user_id = OLD.id
        GROUP BY p.tool_slug, p.status;
        RETURN OLD;
    END IF;
    INSERT INTO shared.funnel_counts (organization_id, tool_slug, status, n)
    SELECT side.organization_id, p.tool_slug, p.status, side.sign * count(*)
    FROM shared.user_progress p
    CROSS JOIN (VALUES (OLD.organization_id, -1), (NEW.organization_id, 1)) AS side (organization_id, sign)
    WHERE p.user_id = NEW.id
    GROUP BY side.organization_id, side.sign, p.tool_slug, p.status;
    RETURN NULL;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.count_member() FROM PUBLIC;

CREATE TRIGGER users_count_move AFTER UPDATE OF organization_id ON shared.users
    FOR EACH ROW WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id)
    EXECUTE FUNCTION shared.count_member();
CREATE TRIGGER users_count_delete BEFORE DELETE ON shared.users
    FOR EACH ROW EXECUTE FUNCTION shared.count_member();

-- Every count again, exactly, from the progress: the deltas of transactions
-- that committed before this statement's snapshot are replaced by what they
-- did; those of later ones (and of those still running) stay, and add to it.
-- One run at a time (the lock); returns how many count rows there are now.
CREATE FUNCTION shared.recount_funnel() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rows bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('shared.recount_funnel'));
    WITH gone AS (
        DELETE FROM shared.funnel_counts RETURNING 1
    ), exact AS (
        INSERT INTO shared.funnel_counts (organization_id, tool_slug, status, n)
        SELECT u.organization_id, p.tool_slug, p.status, count(*)
        FROM shared.user_progress p JOIN shared.users u ON u.id = p.user_id
        GROUP BY u.organization_id, p.tool_slug, p.status
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM exact) + 0 * (SELECT count(*) FROM gone) INTO rows;
    RETURN rows;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.recount_funnel() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shared.recount_funnel() TO fasttrack_runtime;

SELECT shared.recount_funnel();
