-- shared.create_tool_schema(name): gives one tool its schema with the design's
-- `submissions` and `field_outputs` tables. It stays in the database so that a
-- new tool is one call away (design.md, "Schema Evolution"), and it is
-- idempotent: calling it again on a complete schema changes nothing.
--
-- Two decisions design.md leaves open are made here:
--   * one current submission per user per tool: the design's index on
--     submissions(user_id) is UNIQUE; saving again updates the row and bumps
--     `version`;
--   * field_outputs holds one value per field of a submission: the design's
--     index on (submission_id, field_id) is UNIQUE.
--
-- The name is checked here as well as in the application, and quoted with %I,
-- so even a direct call from psql cannot smuggle SQL into the DDL.

CREATE FUNCTION shared.create_tool_schema(schema_name text) RETURNS void
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
END;
$fn$;
