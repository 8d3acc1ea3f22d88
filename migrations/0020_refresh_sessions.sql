-- Sessions that outlast a long form (issue 26, section 4): a short-lived
-- bearer token plus an opaque refresh token, rotated on every use (RFC 9700,
-- 4.14.2). A launch starts a family; each refresh uses up the family's
-- current token and adds its successor. A token used a second time revokes
-- its whole family (reuse: one of the two holders is not the participant).
-- Only SHA-256 hashes of the tokens are stored: a database read gives no one
-- a working token.

-- A session: one launch and every refresh that followed it. `user_version`
-- is the user's `version` (0018) when the family began: a role or
-- organization change since then refuses its refresh, even where the trigger
-- below did not see the family (a launch committing beside the change).
CREATE TABLE shared.refresh_families (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    user_version INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    last_used_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    -- The absolute end (REFRESH_TOKEN_TTL_SECONDS after the launch); the idle
    -- end is last_used_at + REFRESH_TOKEN_IDLE_SECONDS, read at each refresh.
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    revoked_at TIMESTAMP WITH TIME ZONE,
    revoked_reason VARCHAR(20)
        CHECK (revoked_reason IN ('logout', 'reuse', 'expired', 'idle', 'role_changed', 'account_closed')),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX idx_refresh_families_user ON shared.refresh_families (user_id) WHERE revoked_at IS NULL;
CREATE INDEX idx_refresh_families_expires_at ON shared.refresh_families (expires_at);

-- Each token a family was given: the current one (`used_at` null) and the
-- used ones, kept with the family so that a reuse is recognised.
CREATE TABLE shared.refresh_tokens (
    token_sha256 BYTEA PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    family_id UUID NOT NULL REFERENCES shared.refresh_families(id) ON DELETE CASCADE,
    issued_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    used_at TIMESTAMP WITH TIME ZONE
);
CREATE INDEX idx_refresh_tokens_family ON shared.refresh_tokens (family_id);

-- The route functions (sync-user starts, refreshes and ends sessions; the
-- recompute deletes ended ones). No UPDATE of who a family belongs to, when
-- it began or ends, nor of a token's hash.
GRANT SELECT, INSERT, DELETE ON shared.refresh_families, shared.refresh_tokens TO fasttrack_runtime;
GRANT UPDATE (last_used_at, revoked_at, revoked_reason) ON shared.refresh_families TO fasttrack_runtime;
GRANT UPDATE (used_at) ON shared.refresh_tokens TO fasttrack_runtime;

-- A change of role or organization, and an erasure request, revoke the
-- person's sessions at once, whoever makes it (an admin's PATCH, set_role, a
-- LearnWorlds tag sync, a request for erasure). The trigger runs as whoever
-- changed the row: the runtime role may revoke (above); the owner may.
CREATE FUNCTION shared.revoke_refresh_families() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    UPDATE shared.refresh_families
    SET revoked_at = clock_timestamp(),
        revoked_reason = CASE WHEN NEW.erasure_requested_at IS NOT NULL
                                   AND OLD.erasure_requested_at IS NULL
                              THEN 'account_closed' ELSE 'role_changed' END
    WHERE user_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END;
$fn$;
CREATE TRIGGER users_revoke_refresh_families
    AFTER UPDATE OF role, organization_id, erasure_requested_at ON shared.users
    FOR EACH ROW
    WHEN (NEW.role IS DISTINCT FROM OLD.role
          OR NEW.organization_id IS DISTINCT FROM OLD.organization_id
          OR (NEW.erasure_requested_at IS NOT NULL AND OLD.erasure_requested_at IS NULL))
    EXECUTE FUNCTION shared.revoke_refresh_families();

-- The eraser: a person's sessions go with their row (the foreign keys'
-- cascade, run as the tables' owner); it may read them, as it reads the rest.
GRANT SELECT ON shared.refresh_families, shared.refresh_tokens TO fasttrack_eraser;
