-- The shared schema, column for column as design.md lists it.
-- organizations comes before users because users references it.

CREATE SCHEMA shared;

-- Keeps updated_at current on every UPDATE of a table that has the column.
CREATE FUNCTION shared.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$;

CREATE TABLE shared.organizations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(255) NOT NULL,
    slug VARCHAR(255) UNIQUE NOT NULL,
    settings JSONB DEFAULT '{}'::jsonb,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE shared.users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    lms_user_id VARCHAR(255) UNIQUE NOT NULL,
    email VARCHAR(255) UNIQUE NOT NULL,
    full_name VARCHAR(255) NOT NULL,
    organization_id UUID REFERENCES shared.organizations(id),
    role VARCHAR(50) NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'guru')),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    last_login TIMESTAMP WITH TIME ZONE
);

CREATE TABLE shared.user_progress (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES shared.users(id) ON DELETE CASCADE,
    tool_slug VARCHAR(255) NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'locked' CHECK (status IN ('locked', 'unlocked', 'in_progress', 'completed')),
    progress_percentage INTEGER DEFAULT 0 CHECK (progress_percentage >= 0 AND progress_percentage <= 100),
    unlocked_at TIMESTAMP WITH TIME ZONE,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    UNIQUE(user_id, tool_slug)
);

CREATE INDEX idx_user_progress_user_id ON shared.user_progress (user_id);
CREATE INDEX idx_user_progress_status ON shared.user_progress (status);

CREATE TRIGGER organizations_set_updated_at BEFORE UPDATE ON shared.organizations
    FOR EACH ROW EXECUTE FUNCTION shared.set_updated_at();
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON shared.users
    FOR EACH ROW EXECUTE FUNCTION shared.set_updated_at();
CREATE TRIGGER user_progress_set_updated_at BEFORE UPDATE ON shared.user_progress
    FOR EACH ROW EXECUTE FUNCTION shared.set_updated_at();
