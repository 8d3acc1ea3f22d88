-- The route functions log in as their own role in fasttrack_runtime, never as
-- the role that owns the schemas (their cold start refuses one that does).
-- The migrate function makes that login from the runtime database secret:
--
--   select shared.ensure_runtime_login('fasttrack_lambda', '<password>');
--
-- creates the role (or sets its password to the secret's, which a rotation may
-- have changed) and makes it a member of fasttrack_runtime. It refuses the
-- calling role itself and superusers, and only the owner may call it. The
-- password is a bind parameter of that call, quoted into the DDL here, so it
-- never appears in a statement the server logs.
CREATE FUNCTION shared.ensure_runtime_login(login text, password text) RETURNS void
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
