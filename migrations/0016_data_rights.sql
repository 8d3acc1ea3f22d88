-- Data rights: erasure on request, after a cool-off, by a role of its own;
-- tombstones so that an erased person is not re-created; retention of the
-- audit log.

-- A person whose erasure is requested can no longer sign in or use a token:
-- every statement that reads or writes for a caller joins `shared.callers`,
-- the users whose account is open, instead of `shared.users`.
ALTER TABLE shared.users ADD COLUMN erasure_requested_at TIMESTAMP WITH TIME ZONE;
GRANT UPDATE (erasure_requested_at) ON shared.users TO fasttrack_runtime;

CREATE VIEW shared.callers AS
    SELECT * FROM shared.users WHERE erasure_requested_at IS NULL;
GRANT SELECT ON shared.callers TO fasttrack_runtime;
-- A save locks its caller's row through the view (FOR NO KEY UPDATE).
GRANT UPDATE (email, full_name, organization_id, last_login) ON shared.callers TO fasttrack_runtime;

-- Requests: an admin's for anyone, a participant's for themself. `subject` is
-- the person's id until they are erased, then their pseudonym (the keyed hash
-- the audit log uses).
CREATE TABLE shared.erasure_requests (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    subject UUID NOT NULL,
    requested_by UUID,
    requested_by_role VARCHAR(50) NOT NULL,
    reason TEXT NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1000),
    requested_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    erase_after TIMESTAMP WITH TIME ZONE NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'cancelled', 'erased')),
    cancelled_by UUID,
    cancelled_at TIMESTAMP WITH TIME ZONE,
    erased_at TIMESTAMP WITH TIME ZONE
);
-- One open request per person.
CREATE UNIQUE INDEX erasure_requests_one_pending ON shared.erasure_requests (subject)
    WHERE status = 'pending';
CREATE INDEX idx_erasure_requests_due ON shared.erasure_requests (erase_after)
    WHERE status = 'pending';
GRANT SELECT, INSERT ON shared.erasure_requests TO fasttrack_runtime;
GRANT UPDATE (status, cancelled_by, cancelled_at) ON shared.erasure_requests TO fasttrack_runtime;

-- What is kept of an erased person: keyed hashes (HMAC-SHA256 with a secret
-- of the service's) of their LearnWorlds id and email, so that a later
-- webhook or launch for them is refused instead of re-creating them. An
-- admin may lift one (recorded, and audited).
CREATE TABLE shared.tombstones (
    lms_hash BYTEA PRIMARY KEY,
    email_hash BYTEA NOT NULL,
    erased_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    lifted_at TIMESTAMP WITH TIME ZONE,
    lifted_by UUID
);
CREATE INDEX idx_tombstones_email ON shared.tombstones (email_hash);
GRANT SELECT ON shared.tombstones TO fasttrack_runtime;
GRANT UPDATE (lifted_at, lifted_by) ON shared.tombstones TO fasttrack_runtime;

-- The erasure's own group role: exactly what erasing a person takes, and
-- nothing the route functions have. Its login is made like the runtime's.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fasttrack_eraser') THEN
        CREATE ROLE fasttrack_eraser NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$;
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO fasttrack_eraser', current_database());
END;
$$;
GRANT USAGE ON SCHEMA shared TO fasttrack_eraser;
GRANT SELECT ON shared.users, shared.erasure_requests, shared.tombstones, shared.audit_log,
    shared.webhook_events, shared.comments, shared.webhook_last_deliveries,
    shared.session_launches TO fasttrack_eraser;
-- The person's row; its foreign keys take their progress, keys, budget,
-- submissions and outputs in every tool schema, comments about them, their
-- overrides and history with it (a foreign key's action runs as the owner of
-- the table it changes: the eraser needs no right on the tool schemas).
GRANT DELETE ON shared.users TO fasttrack_eraser;
-- Who set someone else's role or organization, when it was them.
GRANT UPDATE (organization_set_by, role_set_by) ON shared.users TO fasttrack_eraser;
GRANT UPDATE (subject, requested_by, cancelled_by, reason, status, erased_at)
    ON shared.erasure_requests TO fasttrack_eraser;
GRANT INSERT, UPDATE (email_hash, erased_at, lifted_at, lifted_by) ON shared.tombstones TO fasttrack_eraser;
-- The log keeps its rows: the person's id in them becomes their pseudonym.
GRANT INSERT, UPDATE (actor_id, subjects, before, after, reason) ON shared.audit_log TO fasttrack_eraser;
GRANT UPDATE (payload, lms_user_id) ON shared.webhook_events TO fasttrack_eraser;
GRANT DELETE ON shared.webhook_last_deliveries, shared.session_launches TO fasttrack_eraser;
GRANT UPDATE (author_name, body) ON shared.comments TO fasttrack_eraser;

-- The audit log's retention: rows older than the period go, through this
-- function alone (the runtime role cannot delete from the log). Nothing
-- younger than 30 days, whatever it is asked.
CREATE FUNCTION shared.expire_audit_log(keep_days integer) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    WITH expired AS (
        DELETE FROM shared.audit_log
        WHERE at < statement_timestamp() - make_interval(days => greatest(keep_days, 30))
        RETURNING 1
    )
    SELECT count(*) FROM expired
$fn$;
REVOKE EXECUTE ON FUNCTION shared.expire_audit_log(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shared.expire_audit_log(integer) TO fasttrack_runtime;

-- The eraser's login is made from its own secret by migrate, as the
-- runtime's is (0010), with this group role instead.
CREATE FUNCTION shared.ensure_eraser_login(login text, password text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF login IS NULL OR login = '' OR octet_length(login) > 63 THEN
        RAISE EXCEPTION 'invalid eraser login name: %', login
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF login = current_user
       OR EXISTS (SELECT FROM pg_roles r
                  WHERE r.rolname = login
                    AND (r.rolsuper
                         OR pg_has_role(r.oid, (SELECT nspowner FROM pg_namespace WHERE nspname = 'shared'), 'MEMBER')
                         OR pg_has_role(r.oid, 'fasttrack_runtime', 'MEMBER'))) THEN
        RAISE EXCEPTION 'the eraser login % must be neither the owner, a superuser nor the runtime login', login
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = login) THEN
        IF password IS NULL THEN
            EXECUTE format('CREATE ROLE %I LOGIN', login);
        ELSE
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', login, password);
        END IF;
    ELSIF password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', login, password);
    END IF;
    EXECUTE format('GRANT fasttrack_eraser TO %I', login);
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.ensure_eraser_login(text, text) FROM PUBLIC;

-- And the runtime's login may not be the eraser's: one secret for both would
-- give every route function the right to delete people.
CREATE OR REPLACE FUNCTION shared.ensure_runtime_login(login text, password text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF login IS NULL OR login = '' OR octet_length(login) > 63 THEN
        RAISE EXCEPTION 'invalid runtime login name: %', login
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF login = current_user
       OR EXISTS (SELECT FROM pg_roles r
                  WHERE r.rolname = login
                    AND (r.rolsuper
                         OR pg_has_role(r.oid, (SELECT nspowner FROM pg_namespace WHERE nspname = 'shared'), 'MEMBER'))) THEN
        RAISE EXCEPTION 'the runtime login % must not be the schemas'' owner or a superuser', login
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM pg_roles r
               WHERE r.rolname = login AND pg_has_role(r.oid, 'fasttrack_eraser', 'MEMBER')) THEN
        RAISE EXCEPTION 'the runtime login % must not be the eraser''s login', login
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = login) THEN
        IF password IS NULL THEN
            EXECUTE format('CREATE ROLE %I LOGIN', login);
        ELSE
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', login, password);
        END IF;
    ELSIF password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', login, password);
    END IF;
    EXECUTE format('GRANT fasttrack_runtime TO %I', login);
END;
$fn$;
REVOKE EXECUTE ON FUNCTION shared.ensure_runtime_login(text, text) FROM PUBLIC;
