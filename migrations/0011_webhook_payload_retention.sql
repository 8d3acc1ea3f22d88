-- A webhook delivery's payload (a LearnWorlds user: name, email, tags, sign-up
-- fields) is personal data kept only as long as it helps: the scheduled
-- recompute empties the payloads older than WEBHOOK_PAYLOAD_RETENTION_DAYS
-- (30 by default). The delivery's record (its hash, type, trigger, LearnWorlds
-- id, outcome and time) stays: it is how a retry is told from a new delivery.
--
-- The runtime role still cannot change or delete what the log recorded
-- (0006): it may only call this function, which empties nothing younger than
-- a day, whatever it is asked.
ALTER TABLE shared.webhook_events ALTER COLUMN payload DROP NOT NULL;

CREATE FUNCTION shared.expire_webhook_payloads(keep_days integer) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    WITH expired AS (
        UPDATE shared.webhook_events SET payload = NULL
        WHERE payload IS NOT NULL
          AND received_at < statement_timestamp() - make_interval(days => greatest(keep_days, 1))
        RETURNING 1
    )
    SELECT count(*) FROM expired
$fn$;
REVOKE EXECUTE ON FUNCTION shared.expire_webhook_payloads(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shared.expire_webhook_payloads(integer) TO fasttrack_runtime;
