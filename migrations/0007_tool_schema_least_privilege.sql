-- The tool schemas' share of least privilege (0006 did `shared`). The runtime
-- role had SELECT, INSERT, UPDATE and DELETE on every tool's tables, so a
-- foothold in it could delete everyone's submissions (and, by cascade, their
-- outputs) or hand them to another user. A save only ever does this:
--
--   submissions    INSERT and UPDATE of the saved columns    never user_id or id,
--                                                            and never a DELETE
--   field_outputs  INSERT, UPDATE of the value and its time,  a submit replaces the
--                  DELETE                                     outputs it no longer makes
--
-- The code one release back runs the same statements, so it keeps working.

-- create_tool_schema keeps making the tables (its body, as 0004 left it, under
-- a new name that only migrations may run), then sets these privileges.
ALTER FUNCTION shared.create_tool_schema(text) RENAME TO create_tool_schema_tables;

CREATE FUNCTION shared.grant_tool_schema(schema_name text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF schema_name IS NULL
       OR schema_name !~ '^sprint_[0-9]{2}_[a-z0-9_]+$'
       OR octet_length(schema_name) > 63 THEN
        RAISE EXCEPTION 'invalid tool schema name: %', schema_name
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO fasttrack_runtime', schema_name);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM fasttrack_runtime', schema_name);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO fasttrack_runtime', schema_name);
    EXECUTE format('GRANT INSERT (user_id, organization_id, data, status, submitted_data, submitted_at, completed_at), '
                   'UPDATE (organization_id, data, status, submitted_data, submitted_at, completed_at, version) '
                   'ON %I.submissions TO fasttrack_runtime', schema_name);
    EXECUTE format('GRANT INSERT (submission_id, field_id, field_value), UPDATE (field_value, created_at), DELETE '
                   'ON %I.field_outputs TO fasttrack_runtime', schema_name);
END;
$fn$;

CREATE FUNCTION shared.create_tool_schema(schema_name text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM shared.create_tool_schema_tables(schema_name);
    PERFORM shared.grant_tool_schema(schema_name);
END;
$fn$;

-- Only migrations create tool schemas or grant on them.
REVOKE EXECUTE ON FUNCTION shared.create_tool_schema_tables(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION shared.grant_tool_schema(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION shared.create_tool_schema(text) FROM PUBLIC;

-- The tool schemas that exist already, with their tables. One created empty
-- by hand, ahead of its tool, gets its tables and grants from migrate later.
DO $$
DECLARE
    tool_schema text;
BEGIN
    FOR tool_schema IN
        SELECT nspname FROM pg_namespace
        WHERE nspname ~ '^sprint_[0-9]{2}_[a-z0-9_]+$'
          AND to_regclass(format('%I.submissions', nspname)) IS NOT NULL
          AND to_regclass(format('%I.field_outputs', nspname)) IS NOT NULL
    LOOP
        PERFORM shared.grant_tool_schema(tool_schema);
    END LOOP;
END;
$$;
