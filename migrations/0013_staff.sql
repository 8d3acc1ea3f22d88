-- What coaches (gurus) and admins do, and the record of it.
--
-- audit_log: every staff change, and every staff read of another person's
-- data, written in the same transaction (for a read, the same statement) as
-- what it records. Append-only: the runtime role may insert and read it, never
-- change or delete a row. `subjects` lists the people whose data was read or
-- changed (a roster page lists every member it showed), so that each can learn
-- who looked at their data and when. Actors and subjects are ids, not foreign
-- keys: the record outlives the rows it names.
CREATE TABLE shared.audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    actor_id UUID,
    actor_role VARCHAR(50),
    action VARCHAR(64) NOT NULL,
    subjects UUID[] NOT NULL DEFAULT '{}',
    organization_id UUID,
    tool_slug VARCHAR(255),
    reason TEXT,
    request_id VARCHAR(255),
    before JSONB,
    after JSONB
);
CREATE INDEX idx_audit_log_at ON shared.audit_log (at);
CREATE INDEX idx_audit_log_actor_at ON shared.audit_log (actor_id, at);
CREATE INDEX idx_audit_log_organization_at ON shared.audit_log (organization_id, at);
CREATE INDEX idx_audit_log_action_at ON shared.audit_log (action, at);
CREATE INDEX idx_audit_log_subjects ON shared.audit_log USING gin (subjects);
GRANT SELECT, INSERT ON shared.audit_log TO fasttrack_runtime;

-- Comments staff leave on a participant's tool: append-only, like the log.
CREATE TABLE shared.comments (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    tool_slug VARCHAR(255) NOT NULL,
    author_id UUID REFERENCES shared.users(id) ON DELETE SET NULL,
    author_role VARCHAR(50) NOT NULL,
    author_name VARCHAR(255) NOT NULL,
    body TEXT NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4000),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_comments_user_tool ON shared.comments (user_id, tool_slug, created_at);
CREATE INDEX idx_comments_author ON shared.comments (author_id);
GRANT SELECT, INSERT ON shared.comments TO fasttrack_runtime;

-- When a participant last read each tool's comments: the unread counts.
CREATE TABLE shared.comment_reads (
    user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    tool_slug VARCHAR(255) NOT NULL,
    read_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (user_id, tool_slug)
);
GRANT SELECT, INSERT, UPDATE ON shared.comment_reads TO fasttrack_runtime;

-- Overrides on a participant's tool: an unlock although inputs are missing,
-- or a reopen of a submitted tool for revision. Append-only.
CREATE TABLE shared.overrides (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    tool_slug VARCHAR(255) NOT NULL,
    kind VARCHAR(20) NOT NULL CHECK (kind IN ('unlock', 'reopen')),
    actor_id UUID REFERENCES shared.users(id) ON DELETE SET NULL,
    actor_role VARCHAR(50) NOT NULL,
    reason TEXT NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1000),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_overrides_user_tool ON shared.overrides (user_id, tool_slug, created_at);
GRANT SELECT, INSERT ON shared.overrides TO fasttrack_runtime;

-- A submitted version a reopen set aside: its history.
CREATE TABLE shared.submission_history (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    tool_slug VARCHAR(255) NOT NULL,
    version INTEGER NOT NULL,
    data JSONB NOT NULL,
    submitted_at TIMESTAMP WITH TIME ZONE,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_submission_history_user_tool ON shared.submission_history (user_id, tool_slug, recorded_at);
GRANT SELECT, INSERT ON shared.submission_history TO fasttrack_runtime;

-- Who set a user's organization and role. An admin's assignment of an
-- organization sticks: a later LearnWorlds tag sync leaves it as it is until
-- an admin hands it back to LearnWorlds (organization_source = 'learnworlds').
ALTER TABLE shared.users
    ADD COLUMN organization_source VARCHAR(20) NOT NULL DEFAULT 'learnworlds'
        CHECK (organization_source IN ('learnworlds', 'admin')),
    ADD COLUMN organization_set_by UUID,
    ADD COLUMN role_set_by UUID,
    ADD COLUMN role_set_at TIMESTAMP WITH TIME ZONE;

-- Staff find people by name or email prefix, case-insensitively, at any size.
CREATE INDEX idx_users_lower_email_prefix ON shared.users (lower(email) text_pattern_ops);
CREATE INDEX idx_users_lower_name_prefix ON shared.users (lower(full_name) text_pattern_ops, id);
CREATE INDEX idx_users_organization_name ON shared.users (organization_id, lower(full_name), id);

-- The runtime role still cannot set a role (0006): an admin's change goes
-- through this function, which checks in the database that the actor is an
-- admin, that they do not change their own role, and that the last admin
-- stays one, and writes the audit row in the same transaction. Returns the
-- user's role before the change; raises insufficient_privilege (42501) for
-- an actor who is not an admin, and check_violation (23514) for a guard.
CREATE FUNCTION shared.set_role(actor UUID, target UUID, new_role TEXT, why TEXT, request TEXT)
RETURNS TEXT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    old_role TEXT;
    target_org UUID;
BEGIN
    IF new_role NOT IN ('user', 'guru', 'admin') THEN
        RAISE EXCEPTION 'unknown role %', new_role USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The admins, locked, so that two demotions cannot both pass the guard.
    PERFORM 1 FROM shared.users WHERE role = 'admin' ORDER BY id FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM shared.users WHERE id = actor AND role = 'admin') THEN
        RAISE EXCEPTION 'only an admin changes roles' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF actor = target THEN
        RAISE EXCEPTION 'nobody changes their own role' USING ERRCODE = 'check_violation';
    END IF;
    SELECT role, organization_id INTO old_role, target_org FROM shared.users WHERE id = target FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such user' USING ERRCODE = 'no_data_found';
    END IF;
    IF old_role = 'admin' AND new_role <> 'admin'
       AND (SELECT count(*) FROM shared.users WHERE role = 'admin') <= 1 THEN
        RAISE EXCEPTION 'the last admin stays an admin' USING ERRCODE = 'check_violation';
    END IF;
    UPDATE shared.users SET role = new_role, role_set_by = actor, role_set_at = clock_timestamp()
    WHERE id = target;
    INSERT INTO shared.audit_log (actor_id, actor_role, action, subjects, organization_id, reason, request_id, before, after)
    VALUES (actor, 'admin', 'change.role', ARRAY[target], target_org, why, request,
            jsonb_build_object('role', old_role), jsonb_build_object('role', new_role));
    RETURN old_role;
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.set_role(UUID, UUID, TEXT, TEXT, TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shared.set_role(UUID, UUID, TEXT, TEXT, TEXT) TO fasttrack_runtime;

GRANT UPDATE (organization_source, organization_set_by) ON shared.users TO fasttrack_runtime;
GRANT INSERT (organization_source, organization_set_by) ON shared.users TO fasttrack_runtime;
