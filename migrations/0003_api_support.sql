-- What the API needs beyond design.md's tables.

-- Emails are compared case-insensitively: one account per address, whatever its case.
CREATE UNIQUE INDEX users_email_lower_key ON shared.users (lower(email));

-- Idempotency-Key of a save, per user, kept 24 hours: a retry replays `response`.
CREATE TABLE shared.idempotency_keys (
    user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    key VARCHAR(255) NOT NULL,
    request_sha256 BYTEA NOT NULL,
    response JSONB,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idx_idempotency_keys_created_at ON shared.idempotency_keys (created_at);

-- Every LearnWorlds webhook delivery acted on or not. LearnWorlds sends no event
-- id, so a delivery is identified by its body: the same body twice is one event.
CREATE TABLE shared.webhook_events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    body_sha256 BYTEA NOT NULL UNIQUE,
    event_type VARCHAR(255),
    trigger VARCHAR(255),
    lms_user_id VARCHAR(255),
    outcome VARCHAR(50) NOT NULL CHECK (outcome IN ('synced', 'ignored')),
    payload JSONB NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_webhook_events_received_at ON shared.webhook_events (received_at);

-- Signed session launches already used: a launch works once.
CREATE TABLE shared.session_launches (
    signature_sha256 BYTEA PRIMARY KEY,
    lms_user_id VARCHAR(255) NOT NULL,
    used_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_session_launches_used_at ON shared.session_launches (used_at);

-- submissions.submitted_data: the data of the last submit, the version dependents
-- see while a later draft is being edited in `data`. create_tool_schema is
-- replaced so new tools get the column, and existing tool schemas are upgraded.
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
END;
$fn$;

DO $$
DECLARE
    tool_schema text;
BEGIN
    FOR tool_schema IN
        SELECT table_schema FROM information_schema.tables
        WHERE table_schema LIKE 'sprint\_%' AND table_name = 'submissions'
    LOOP
        EXECUTE format('ALTER TABLE %I.submissions ADD COLUMN IF NOT EXISTS submitted_data JSONB', tool_schema);
    END LOOP;
END;
$$;
