-- The runtime role: what the Lambdas may do, and nothing more.
--
-- Migrations run as the role that owns the schemas (the migrate function's
-- secret, or `fasttrack migrate`). The route functions and the recompute log in
-- as a role that is a member of `fasttrack_runtime`, a NOLOGIN group role with
-- USAGE and SELECT/INSERT/UPDATE/DELETE on `shared` and on every tool schema,
-- and no CREATE anywhere: no DDL, no temporary tables, no ownership.
--
--   CREATE ROLE fasttrack_lambda LOGIN PASSWORD '...' IN ROLE fasttrack_runtime;
--
-- Roles belong to the cluster, not the database: the group role is made here
-- only if it does not exist yet (the migration role then needs CREATEROLE
-- once, or an administrator creates `fasttrack_runtime` beforehand).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fasttrack_runtime') THEN
        CREATE ROLE fasttrack_runtime NOLOGIN;
    END IF;
EXCEPTION
    -- Another database on the same cluster created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$;

-- Nobody but the owner creates objects: not in `public` (PostgreSQL 15's
-- default, but not on a cluster upgraded from an older version), and no
-- temporary tables (they live in a schema of their own).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO fasttrack_runtime', current_database());
END;
$$;

-- The shared schema: its tables now, and those later migrations add.
GRANT USAGE ON SCHEMA shared TO fasttrack_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shared TO fasttrack_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA shared
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO fasttrack_runtime;

-- Only migrations create tool schemas.
REVOKE EXECUTE ON FUNCTION shared.create_tool_schema(text) FROM PUBLIC;

-- create_tool_schema, as in 0003, now also granting the runtime role its DML on
-- the schema it makes (or completes).
CREATE OR REPLACE FUNCTION shared.create_tool_schema(schema_name text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF schema_name IS NULL
       OR schema_name !~ '^sprint_[0-9]{2}_[a-z0-9_]+$'
       OR octet_length(schema_name) > 63 THEN
        RAISE EXCEPTION 'invalid tool schema name: %', schema_name
            USING ERRCODE = 'invalid_schema_name';
    END IF;

    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', schema_name);

    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS %1$I.submissions (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
            organization_id UUID REFERENCES shared.organizations(id) ON DELETE SET NULL,
            data JSONB NOT NULL DEFAULT '{}'::jsonb,
            status VARCHAR(50) NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'in_progress', 'submitted', 'completed')),
            version INTEGER NOT NULL DEFAULT 1,
            created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
            updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
            submitted_at TIMESTAMP WITH TIME ZONE,
            completed_at TIMESTAMP WITH TIME ZONE
        )$ddl$, schema_name);
    EXECUTE format('ALTER TABLE %I.submissions ADD COLUMN IF NOT EXISTS submitted_data JSONB', schema_name);
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS idx_submissions_user_id ON %I.submissions (user_id)', schema_name);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_submissions_user_org ON %I.submissions (user_id, organization_id)', schema_name);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_submissions_status ON %I.submissions (status)', schema_name);
    EXECUTE format('CREATE OR REPLACE TRIGGER submissions_set_updated_at BEFORE UPDATE ON %I.submissions '
                   'FOR EACH ROW EXECUTE FUNCTION shared.set_updated_at()', schema_name);

    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS %1$I.field_outputs (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            submission_id UUID NOT NULL REFERENCES %1$I.submissions(id) ON DELETE CASCADE,
            field_id VARCHAR(255) NOT NULL,
            field_value JSONB NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
        )$ddl$, schema_name);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_field_outputs_submission_id ON %I.field_outputs (submission_id)', schema_name);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_field_outputs_field_id ON %I.field_outputs (field_id)', schema_name);
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS idx_field_outputs_submission_field ON %I.field_outputs (submission_id, field_id)', schema_name);

    EXECUTE format('GRANT USAGE ON SCHEMA %I TO fasttrack_runtime', schema_name);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO fasttrack_runtime', schema_name);
END;
$fn$;

-- The tool schemas that exist already.
DO $$
DECLARE
    tool_schema text;
BEGIN
    FOR tool_schema IN
        SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sprint\_%'
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO fasttrack_runtime', tool_schema);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO fasttrack_runtime', tool_schema);
    END LOOP;
END;
$$;
