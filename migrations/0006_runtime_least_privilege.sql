-- The runtime role (0004) had SELECT, INSERT, UPDATE and DELETE on every table
-- in `shared`, now and to come. The service needs much less, and the surplus
-- is what a foothold in it would use: setting a user's role to admin (which
-- only an operator does, as the owner), or erasing the webhook log. It now has
-- SELECT on the shared tables, and on each only the writes the service makes,
-- column by column where a row holds something it must not set:
--
--   organizations            INSERT (slug, name)                 a sync meets a new one
--   users                    INSERT, UPDATE of the synced         a sync; never role or id
--                            columns (email, full_name,
--                            organization_id, last_login)
--   user_progress            INSERT, UPDATE of the progress       syncs, saves, the recompute
--                            columns
--   idempotency_keys         INSERT, UPDATE, DELETE               saves; the recompute expires them
--   webhook_events           INSERT, UPDATE of received_at        the webhook log: a body applied
--                                                                 again takes the new time
--   webhook_last_deliveries  INSERT, UPDATE                       the webhook's retry check
--   session_launches         INSERT, DELETE                       launches; the recompute expires them
--
-- Tool schemas keep full DML (create_tool_schema grants it): saves insert,
-- update and delete there. A table a later migration adds to `shared` gets no
-- privilege by default (the defaults 0004 set, as the role that runs the
-- migrations, are revoked): that migration grants what the service needs.

REVOKE ALL ON ALL TABLES IN SCHEMA shared FROM fasttrack_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA shared
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM fasttrack_runtime;

GRANT SELECT ON ALL TABLES IN SCHEMA shared TO fasttrack_runtime;

GRANT INSERT (slug, name) ON shared.organizations TO fasttrack_runtime;
GRANT INSERT (lms_user_id, email, full_name, organization_id, last_login),
      UPDATE (email, full_name, organization_id, last_login)
    ON shared.users TO fasttrack_runtime;
GRANT INSERT (user_id, tool_slug, status, unlocked_at),
      UPDATE (status, progress_percentage, unlocked_at, started_at, completed_at)
    ON shared.user_progress TO fasttrack_runtime;
GRANT INSERT, UPDATE, DELETE ON shared.idempotency_keys TO fasttrack_runtime;
GRANT INSERT (body_sha256, event_type, trigger, lms_user_id, outcome, payload),
      UPDATE (received_at)
    ON shared.webhook_events TO fasttrack_runtime;
GRANT INSERT (lms_user_id, body_sha256), UPDATE (body_sha256, received_at)
    ON shared.webhook_last_deliveries TO fasttrack_runtime;
GRANT INSERT (signature_sha256, lms_user_id), DELETE
    ON shared.session_launches TO fasttrack_runtime;
