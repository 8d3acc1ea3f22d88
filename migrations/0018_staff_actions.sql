-- What staff do (issue 23, the write side): roles and organizations set by
-- admins, overrides, comments. 0013 made the tables; this adds what the
-- routes need to change them safely.

-- A user's ETag (`GET /users/{id}`, `If-Match` on `PATCH /users/{id}`): bumped
-- by every change of role, organization or where the organization comes from,
-- whoever makes it (an admin, shared.set_role, a LearnWorlds tag sync), so a
-- stale If-Match is always seen. A BEFORE trigger sets it: no role needs a
-- grant on the column.
ALTER TABLE shared.users ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

CREATE FUNCTION shared.bump_user_version() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.role IS DISTINCT FROM OLD.role
       OR NEW.organization_id IS DISTINCT FROM OLD.organization_id
       OR NEW.organization_source IS DISTINCT FROM OLD.organization_source THEN
        NEW.version := OLD.version + 1;
    ELSE
        NEW.version := OLD.version;
    END IF;
    RETURN NEW;
END;
$fn$;
CREATE TRIGGER users_bump_version BEFORE UPDATE ON shared.users
    FOR EACH ROW EXECUTE FUNCTION shared.bump_user_version();

-- An admin's organization assignment (organization_source = 'admin', which
-- LearnWorlds' tag syncs then leave alone), and when they joined it.
GRANT UPDATE (organization_id, organization_joined_at) ON shared.users TO fasttrack_runtime;

-- Idempotency-Keys of staff changes (`PATCH /users/{id}`), per actor, kept 24
-- hours (the recompute expires them) and at most 100 per actor: a retry
-- replays `response`. `subject` is the person the change was about: their
-- erasure takes the stored answer (which names them) with it.
CREATE TABLE shared.staff_idempotency_keys (
    actor_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    key VARCHAR(255) NOT NULL,
    subject UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    request_sha256 BYTEA NOT NULL,
    response JSONB,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (actor_id, key)
);
CREATE INDEX idx_staff_idempotency_keys_created_at ON shared.staff_idempotency_keys (created_at);
CREATE INDEX idx_staff_idempotency_keys_subject ON shared.staff_idempotency_keys (subject);
GRANT SELECT, INSERT, UPDATE, DELETE ON shared.staff_idempotency_keys TO fasttrack_runtime;

-- A reopen returns a submitted tool to a draft; the progress row follows.
-- (The tool schemas already let the runtime update submissions.)

-- A participant's activity page (`GET /me/activity`): their overrides and
-- comments, newest first.
CREATE INDEX idx_overrides_user_created ON shared.overrides (user_id, created_at, id);
CREATE INDEX idx_comments_user_created ON shared.comments (user_id, created_at, id);
CREATE INDEX idx_overrides_actor ON shared.overrides (actor_id);

-- The eraser: an erased staff member's name is taken out of their overrides'
-- reasons as it is out of their comments (0016), and an erased person's
-- staff idempotency keys go with their row (the foreign keys' cascade).
GRANT SELECT ON shared.overrides, shared.submission_history, shared.staff_idempotency_keys
    TO fasttrack_eraser;
GRANT UPDATE (reason) ON shared.overrides TO fasttrack_eraser;
