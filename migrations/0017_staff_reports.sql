-- What the staff reports (GET /organizations/{id}/members and /funnel) sort
-- and filter a roster by, kept on each user's row so that a page of a
-- 10,000-member organization is an index range, page 90 as cheap as page 1.
--
-- tools_completed: how many of the user's progress rows are completed.
-- last_activity_at: the last save or submit of any tool (the last change of
-- a progress row that is in progress or completed), to the minute: saves
-- within a minute of it leave it as it is; null when there was none.
--
-- Both are kept by a trigger on shared.user_progress that fires only for a
-- row in progress or completed (or leaving completed): a save or submit,
-- which has locked the user's row already (a save takes its locks in the
-- order user, progress row). The recompute's unlocks (locked to unlocked)
-- never fire it, so it never takes a user's lock after a progress row's.
--
-- They describe the person: the export writes whole user rows (to_jsonb),
-- and the eraser deletes the row, so both follow without a change there.

ALTER TABLE shared.users
    ADD COLUMN tools_completed SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN last_activity_at TIMESTAMP WITH TIME ZONE;

UPDATE shared.users u SET
    tools_completed = s.completed,
    last_activity_at = s.last_activity
FROM (
    SELECT user_id,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           max(updated_at) FILTER (WHERE status IN ('in_progress', 'completed')) AS last_activity
    FROM shared.user_progress
    GROUP BY user_id
) s
WHERE s.user_id = u.id;

CREATE FUNCTION shared.track_member_activity() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    delta integer := 0;
BEGIN
    IF NEW.status = 'completed' THEN
        delta := delta + 1;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = 'completed' THEN
        delta := delta - 1;
    END IF;
    UPDATE shared.users SET
        tools_completed = greatest(tools_completed + delta, 0),
        last_activity_at = CASE
            WHEN NEW.status IN ('in_progress', 'completed')
                THEN greatest(last_activity_at, coalesce(NEW.updated_at, clock_timestamp()))
            ELSE last_activity_at END
    WHERE id = NEW.user_id
      -- A save within a minute of the last one leaves the row alone: no new
      -- version of the user (and of each of its indexes) per autosave.
      AND (delta <> 0 OR last_activity_at IS NULL
           OR last_activity_at < coalesce(NEW.updated_at, clock_timestamp()) - interval '1 minute');
    RETURN NULL;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.track_member_activity() FROM PUBLIC;

CREATE TRIGGER user_progress_track_activity_insert AFTER INSERT ON shared.user_progress
    FOR EACH ROW WHEN (NEW.status IN ('in_progress', 'completed'))
    EXECUTE FUNCTION shared.track_member_activity();
CREATE TRIGGER user_progress_track_activity_update AFTER UPDATE ON shared.user_progress
    FOR EACH ROW WHEN (NEW.status IN ('in_progress', 'completed') OR OLD.status = 'completed')
    EXECUTE FUNCTION shared.track_member_activity();

-- The roster's orders within an organization (by name: idx_users_organization_name, 0013).
CREATE INDEX idx_users_organization_activity
    ON shared.users (organization_id, (coalesce(last_activity_at, '-infinity'::timestamptz)), id);
CREATE INDEX idx_users_organization_completed ON shared.users (organization_id, tools_completed, id);
