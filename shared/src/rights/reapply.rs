//! After a restore: the erasures made since the backup was taken, made again.
//!
//! A backup taken before someone was erased still holds them, and restoring it
//! brings them back. Their tombstone is what remembers the erasure, so the
//! restore procedure (README, "Backups") is:
//!
//! 1. restore the dump;
//! 2. [`import`] the tombstones of a newer copy of the database (the live one,
//!    or the newest backup), which the dump may predate;
//! 3. [`reapply`]: everyone whose LearnWorlds id or email matches a tombstone
//!    that is not lifted is erased again, at once and by the same eraser,
//!    with an audit row saying why.
//!
//! The tombstones hold keyed hashes only, so matching reads every person's id
//! and email and hashes them here with the service's `ERASURE_HASH_KEY`: a
//! restore's database must be re-applied with the key that made them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::eraser;
use crate::foundation::db;
use crate::identity::tombstones::ErasureKeys;

/// A tombstone as it is copied between databases.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tombstone {
    pub lms_hash: Vec<u8>,
    pub email_hash: Vec<u8>,
    pub erased_at: DateTime<Utc>,
    pub lifted_at: Option<DateTime<Utc>>,
    pub lifted_by: Option<Uuid>,
}

/// What a re-application did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Reapplied {
    /// People whose LearnWorlds id or email matched a tombstone.
    pub matched: u64,
    /// People erased (again).
    pub erased: u64,
}

/// People read per statement while matching.
const PAGE: i64 = 5_000;

/// Every tombstone of a database.
pub async fn tombstones(pool: &db::Pool) -> Result<Vec<Tombstone>, sqlx::Error> {
    pool.read(async |conn| {
        db::query_as(
            "select lms_hash, email_hash, erased_at, lifted_at, lifted_by
             from shared.tombstones order by erased_at, lms_hash",
        )
        .fetch_all(conn)
        .await
    })
    .await
}

/// Adds `tombstones` to a database's own, in one statement. Where both hold
/// the same person, the more recent state wins (an erasure after a lift, or a
/// lift after an erasure). Returns how many were added or changed.
pub async fn import(pool: &db::Pool, tombstones: &[Tombstone]) -> Result<u64, sqlx::Error> {
    let lms: Vec<&[u8]> = tombstones.iter().map(|t| t.lms_hash.as_slice()).collect();
    let email: Vec<&[u8]> = tombstones.iter().map(|t| t.email_hash.as_slice()).collect();
    let erased: Vec<DateTime<Utc>> = tombstones.iter().map(|t| t.erased_at).collect();
    let lifted: Vec<Option<DateTime<Utc>>> = tombstones.iter().map(|t| t.lifted_at).collect();
    let by: Vec<Option<Uuid>> = tombstones.iter().map(|t| t.lifted_by).collect();
    pool.transaction(async |conn| {
        let done = db::query(IMPORT)
            .bind(&lms)
            .bind(&email)
            .bind(&erased)
            .bind(&lifted)
            .bind(&by)
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    })
    .await
}

const IMPORT: &str =
    "insert into shared.tombstones as t (lms_hash, email_hash, erased_at, lifted_at, lifted_by)
    select * from unnest($1::bytea[], $2::bytea[], $3::timestamptz[], $4::timestamptz[], $5::uuid[])
    on conflict (lms_hash) do update
    set email_hash = excluded.email_hash, erased_at = excluded.erased_at,
        lifted_at = excluded.lifted_at, lifted_by = excluded.lifted_by
    where greatest(excluded.erased_at, excluded.lifted_at) > greatest(t.erased_at, t.lifted_at)";

/// Erases again everyone a tombstone that is not lifted names.
pub async fn reapply(pool: &db::Pool, keys: &ErasureKeys) -> Result<Reapplied, sqlx::Error> {
    let standing: Vec<(Vec<u8>, Vec<u8>)> = pool
        .read(async |conn| {
            db::query_as(
                "select lms_hash, email_hash from shared.tombstones where lifted_at is null",
            )
            .fetch_all(conn)
            .await
        })
        .await?;
    let mut report = Reapplied::default();
    if standing.is_empty() {
        return Ok(report);
    }
    let lms: HashSet<Vec<u8>> = standing.iter().map(|(l, _)| l.clone()).collect();
    let email: HashSet<Vec<u8>> = standing.into_iter().map(|(_, e)| e).collect();

    let mut matched = Vec::new();
    let mut after = Uuid::nil();
    loop {
        let page: Vec<(Uuid, String, String)> = pool
            .read(async |conn| {
                db::query_as(
                    "select id, lms_user_id::text, email::text from shared.users
                     where id > $1 order by id limit $2",
                )
                .bind(after)
                .bind(PAGE)
                .fetch_all(conn)
                .await
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        matched.extend(
            page.iter()
                .filter(|(_, l, e)| {
                    lms.contains(&keys.lms_hash(l)) || email.contains(&keys.email_hash(e))
                })
                .map(|(id, ..)| *id),
        );
    }
    report.matched = matched.len() as u64;

    for person in matched {
        let request: Uuid = pool
            .transaction(async |conn| db::query_scalar(REQUEST).bind(person).fetch_one(conn).await)
            .await?;
        if eraser::erase(pool, keys, request).await? {
            report.erased += 1;
        }
    }
    tracing::info!(
        matched = report.matched,
        erased = report.erased,
        "erasures re-applied"
    );
    Ok(report)
}

/// Binds: $1 the person. Makes their erasure due now: their pending request
/// (a restore may bring one back) or a new one, closing their account, with
/// the audit row that says why. Returns the request.
const REQUEST: &str = "with due as (
        update shared.erasure_requests set erase_after = clock_timestamp()
        where subject = $1 and status = 'pending'
        returning id
    ), made as (
        insert into shared.erasure_requests (subject, requested_by_role, reason, erase_after)
        select $1, 'system', 'erased before, and brought back by a restore of an older backup', clock_timestamp()
        where not exists (select 1 from due)
        returning id
    ), closed as (
        update shared.users set erasure_requested_at = coalesce(erasure_requested_at, clock_timestamp())
        where id = $1
        returning organization_id
    ), audit as (
        insert into shared.audit_log (actor_role, action, subjects, organization_id, reason)
        select 'system', 'erasure.requested', array[$1::uuid], (select organization_id from closed),
               'erased before, and brought back by a restore of an older backup'
        returning 1
    )
    select id from due union all select id from made";
