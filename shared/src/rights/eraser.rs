//! The erasure itself: the scheduled `erase-users` function, with its own
//! database login (a member of `fasttrack_eraser`, migration 0016), erases
//! every person whose request's cool-off is over.
//!
//! Each person is erased in one transaction of three statements, whatever the
//! number of tool schemas: the erasure is all done or not at all, and a run
//! cut off anywhere leaves the person as they were, for the next run to erase.
//!
//! 1. The lock every sync of their LearnWorlds id takes, and their request and
//!    row, locked; still pending and due, or they are skipped.
//! 2. One statement that
//!    - keeps their tombstone: keyed hashes of their LearnWorlds id and email;
//!    - turns their id into their pseudonym (a keyed hash) in the audit log,
//!      in erasure requests, in tombstones lifted and in who set someone's
//!      role or organization; empties the before, after and reason of the
//!      audit rows about them (free text may name them under any name they
//!      ever had), and takes their name and email out of the reasons of the
//!      rows where they only acted;
//!    - empties the stored webhook payloads that name them, and replaces their
//!      LearnWorlds id there with its hash;
//!    - deletes their last deliveries and session launches;
//!    - signs the comments they wrote as staff with a pseudonym (and takes
//!      their name and email out of them), and takes them out of the reasons
//!      of the overrides they made;
//!    - deletes their row, and with it (foreign keys) their progress,
//!      submissions and field outputs in every tool schema, history,
//!      comments about them, overrides, idempotency keys and save budget;
//!    - marks the request erased and records the erasure in the audit log.
//! 3. COMMIT.

use serde::Serialize;
use uuid::Uuid;

use crate::foundation::db;
use crate::identity::tombstones::ErasureKeys;

/// The most requests one run erases; the next run takes the rest.
pub const DEFAULT_BATCH: i64 = 100;

/// What a run did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// People erased.
    pub erased: u64,
    /// Due requests that were no longer pending when their turn came (an admin
    /// cancelled them meanwhile).
    pub skipped: u64,
    /// Due requests left for the next run (more than a batch).
    pub left: u64,
}

/// Erases everyone whose request is due, at most `batch` of them.
pub async fn run(pool: &db::Pool, keys: &ErasureKeys, batch: i64) -> Result<Report, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let due: Vec<Uuid> = db::query_scalar(
        "select id from shared.erasure_requests
         where status = 'pending' and erase_after <= clock_timestamp()
         order by erase_after, id limit $1",
    )
    .bind(batch + 1)
    .fetch_all(&mut *conn)
    .await?;
    conn.release();
    let mut report = Report {
        left: due.len().saturating_sub(batch as usize) as u64,
        ..Report::default()
    };
    for request in due.into_iter().take(batch as usize) {
        if erase(pool, keys, request).await? {
            report.erased += 1;
        } else {
            report.skipped += 1;
        }
    }
    tracing::info!(
        erased = report.erased,
        skipped = report.skipped,
        left = report.left,
        "erasure run finished"
    );
    Ok(report)
}

/// The person of one request, as the eraser reads them.
#[derive(Debug, sqlx::FromRow)]
struct Person {
    id: Uuid,
    lms_user_id: String,
    email: String,
    full_name: String,
}

/// Erases the person of `request` if it is still pending and due: `false`
/// when it is not (cancelled, erased by another run, or not yet due).
pub async fn erase(
    pool: &db::Pool,
    keys: &ErasureKeys,
    request: Uuid,
) -> Result<bool, sqlx::Error> {
    pool.transaction(async |tx| {
        let person: Option<Person> = db::query_as(LOCK)
            .bind(request)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(person) = person else {
            return Ok(false);
        };
        let pseudonym = keys.pseudonym(person.id);
        // A name too short to find safely in free text is left to the
        // structured columns (a two-letter name would match inside words).
        let name = (person.full_name.chars().count() >= 3).then_some(person.full_name.as_str());
        let (erased,): (i64,) = db::query_as(ERASE)
            .bind(person.id)
            .bind(pseudonym)
            .bind(&person.lms_user_id)
            .bind(&person.email)
            .bind(name)
            .bind(keys.lms_hash(&person.lms_user_id))
            .bind(keys.email_hash(&person.email))
            .bind(request)
            .bind(format!("erased {}", &pseudonym.simple().to_string()[..8]))
            .fetch_one(&mut *tx)
            .await?;
        Ok(erased == 1)
    })
    .await
}

/// Binds: $1 the request. Takes the sync lock of the person's LearnWorlds id
/// (a webhook or launch for them either finished before, or waits and then
/// finds their tombstone), then their request and row, locked.
const LOCK: &str = "select u.id, u.lms_user_id::text, u.email::text, u.full_name::text
    from shared.erasure_requests r
    join shared.users u on u.id = r.subject
    cross join lateral (select pg_advisory_xact_lock(1718908275, hashtext(u.lms_user_id))) as one_sync_per_user
    where r.id = $1 and r.status = 'pending' and r.erase_after <= clock_timestamp()
    for update of r, u";

/// `text` with the person's identifiers replaced: their id by their
/// pseudonym, their LearnWorlds id, email and name (when given) by `[erased]`.
macro_rules! scrubbed {
    ($text:literal) => {
        concat!(
            "replace(replace(replace(replace(",
            $text,
            ", $1::text, $2::text), $3, '[erased]'), $4, '[erased]'), coalesce($5, $3), '[erased]')"
        )
    };
}

/// Binds: $1 id, $2 pseudonym, $3 LearnWorlds id, $4 email, $5 name (or null),
/// $6 LearnWorlds id hash, $7 email hash, $8 request, $9 the pseudonymous name
/// their comments keep.
const ERASE: &str = concat!(
    "with tombstone as (
        insert into shared.tombstones (lms_hash, email_hash) values ($6, $7)
        on conflict (lms_hash) do update
        set email_hash = excluded.email_hash, erased_at = excluded.erased_at,
            lifted_at = null, lifted_by = null
        returning 1
    ), audit_rows as (
        update shared.audit_log l set
            actor_id = case when l.actor_id = $1 then $2 else l.actor_id end,
            subjects = array_replace(l.subjects, $1, $2),
            before = case when l.subjects @> array[$1] then null else l.before end,
            after = case when l.subjects @> array[$1] then null else l.after end,
            reason = case when l.subjects @> array[$1] then null else ",
    scrubbed!("l.reason"),
    " end
        where l.actor_id = $1 or l.subjects @> array[$1]
        returning 1
    ), deliveries as (
        update shared.webhook_events w set
            payload = null,
            lms_user_id = case when w.lms_user_id = $3 then encode($6, 'hex') else w.lms_user_id end
        where w.lms_user_id = $3
           or (w.payload is not null
               and jsonb_path_exists(w.payload, '$.** ? (@ == $id || @ == $email || @ == $lower)',
                                     jsonb_build_object('id', $3, 'email', $4, 'lower', lower($4))))
        returning 1
    ), last_deliveries as (
        delete from shared.webhook_last_deliveries where lms_user_id = $3 returning 1
    ), launches as (
        delete from shared.session_launches where lms_user_id = $3 returning 1
    ), authored as (
        update shared.comments c set author_name = $9, body = left(",
    scrubbed!("c.body"),
    ", 4000)
        where c.author_id = $1
        returning 1
    ), overridden as (
        update shared.overrides o set reason = left(",
    scrubbed!("o.reason"),
    ", 1000)
        where o.actor_id = $1
        returning 1
    ), set_by as (
        update shared.users u set
            organization_set_by = case when u.organization_set_by = $1 then $2 else u.organization_set_by end,
            role_set_by = case when u.role_set_by = $1 then $2 else u.role_set_by end
        where u.id <> $1 and (u.organization_set_by = $1 or u.role_set_by = $1)
        returning 1
    ), requests as (
        update shared.erasure_requests r set
            subject = case when r.subject = $1 then $2 else r.subject end,
            requested_by = case when r.requested_by = $1 then $2 else r.requested_by end,
            cancelled_by = case when r.cancelled_by = $1 then $2 else r.cancelled_by end,
            reason = case when r.subject = $1 then ",
    scrubbed!("r.reason"),
    " else r.reason end,
            status = case when r.id = $8 then 'erased' else r.status end,
            erased_at = case when r.id = $8 then clock_timestamp() else r.erased_at end
        where r.subject = $1 or r.requested_by = $1 or r.cancelled_by = $1
        returning 1
    ), lifts as (
        update shared.tombstones t set lifted_by = $2 where t.lifted_by = $1 returning 1
    ), gone as (
        delete from shared.users where id = $1 returning organization_id
    ), recorded as (
        insert into shared.audit_log (actor_role, action, subjects, organization_id, request_id)
        select 'eraser', 'erasure.completed', array[$2::uuid], gone.organization_id, $8::text
        from gone
        returning 1
    )
    select count(*) from gone"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_erasure_is_one_statement_that_touches_every_table_naming_a_person() {
        for table in [
            "shared.tombstones",
            "shared.audit_log",
            "shared.webhook_events",
            "shared.webhook_last_deliveries",
            "shared.session_launches",
            "shared.comments",
            "shared.overrides",
            "shared.erasure_requests",
            "shared.users",
        ] {
            assert!(ERASE.contains(table), "{table}");
        }
        assert_eq!(ERASE.matches(';').count(), 0);
    }
}
