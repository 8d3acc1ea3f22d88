-- no-transaction
-- A user's recorded deliveries by time, for the webhook's retry check: a body
-- equal to the user's last one is a retry only if nothing newer was applied
-- for that user meanwhile. Code before 0005 applies deliveries without
-- updating `webhook_last_deliveries`, so after a rollback to it and forward
-- again that row may be stale, and the newer `webhook_events` row says so.
--
-- Built concurrently, outside a transaction (one statement, as PostgreSQL
-- requires): the log takes every delivery and keeps taking them meanwhile.
-- Were the build to fail, it leaves an invalid index that this statement would
-- then skip: drop it (DROP INDEX CONCURRENTLY shared.idx_webhook_events_user_received)
-- and run migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_webhook_events_user_received
    ON shared.webhook_events (lms_user_id, received_at);
