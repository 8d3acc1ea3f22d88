-- Which webhook deliveries are duplicates.
--
-- Until now a body seen before was never applied again. LearnWorlds sends no
-- event id or timestamp, and a user set back to an earlier state (A, then B,
-- then A again: an email changed and changed back, an organization tag moved
-- and moved back) arrives byte for byte as the earlier delivery; dropping it
-- left the user in state B, in the wrong organization, whose guru could then
-- read their work.
--
-- A delivery of a user event is now a duplicate only when its body is the last
-- one applied for that LearnWorlds user: a retry of that delivery. This table
-- holds each user's last body, upserted in the statement that records the
-- delivery, so that two copies of one delivery arriving at once apply once.
-- `webhook_events` keeps one row per distinct body, as before; a body applied
-- again has its `received_at` moved to the latest time.
--
-- Only an addition: the service's previous version, which deduplicates by the
-- body alone, runs unchanged on this schema (a rollback after migrating).

CREATE TABLE shared.webhook_last_deliveries (
    lms_user_id VARCHAR(255) PRIMARY KEY,
    body_sha256 BYTEA NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO shared.webhook_last_deliveries (lms_user_id, body_sha256, received_at)
SELECT DISTINCT ON (lms_user_id) lms_user_id, body_sha256, received_at
FROM shared.webhook_events
WHERE outcome = 'synced' AND lms_user_id IS NOT NULL
ORDER BY lms_user_id, received_at DESC, id DESC;

GRANT SELECT, INSERT, UPDATE, DELETE ON shared.webhook_last_deliveries TO fasttrack_runtime;
