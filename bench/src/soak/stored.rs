//! What the database holds after the soak, checked against what clients were
//! told and against the service's invariants.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::drive::Acks;
use super::verdict::Verdicts;
use crate::database;
use shared::Registry;
use shared::foundation::db;
use shared::submissions;

/// (user, slug) -> (version, data).
type Saves = HashMap<(Uuid, String), (i64, Value)>;

/// What the stored submissions say about each user, for the progress checks.
#[derive(Default)]
struct Invariants {
    available: HashSet<(Uuid, String)>,
    submitted: HashSet<(Uuid, String)>,
    outputs_mismatch: usize,
    orphan_outputs: usize,
}

pub async fn judge(
    url: &str,
    acks: &Acks,
    registry: &Registry,
    verdicts: &mut Verdicts,
) -> Result<()> {
    let pool = database::connect(url, 2).await?;
    let (stored, checks) = read_submissions(&pool, registry).await?;
    judge_saves(acks, &stored, verdicts);
    judge_new_users(&pool, acks, verdicts).await?;
    let duplicates: i64 = db::query_scalar(
        "select (select count(*) - count(distinct (user_id, tool_slug)) from shared.user_progress)
              + (select count(*) - count(distinct lms_user_id) from shared.users)
              + (select count(*) - count(distinct lower(email)) from shared.users)
              + (select count(*) from shared.users u
                 where (select count(*) from shared.user_progress p where p.user_id = u.id) <> $1)",
    )
    .bind(registry.tools().len() as i64)
    .fetch_one(&pool)
    .await?;
    verdicts.check(
        format!("no duplicate or missing rows: {duplicates} found"),
        duplicates == 0,
    );
    verdicts.check(
        format!(
            "every submission's field_outputs equal its submitted data's outputs: {} mismatches, {} orphan outputs",
            checks.outputs_mismatch, checks.orphan_outputs
        ),
        checks.outputs_mismatch == 0 && checks.orphan_outputs == 0,
    );
    judge_progress(&pool, registry, &checks, verdicts).await?;
    pool.close().await;
    Ok(())
}

/// Every tool's submissions, and its field outputs checked against them.
async fn read_submissions(pool: &PgPool, registry: &Registry) -> Result<(Saves, Invariants)> {
    let mut stored = Saves::new();
    let mut checks = Invariants::default();
    for tool in registry.tools() {
        let s = tool.schema.quoted();
        let rows: Vec<(Uuid, Uuid, i32, Value, Option<Value>)> = db::query_as(sqlx::AssertSqlSafe(
            format!("select id, user_id, version, data, submitted_data from {s}.submissions"),
        ))
        .fetch_all(pool)
        .await?;
        let outputs: Vec<(Uuid, String, Value)> = db::query_as(sqlx::AssertSqlSafe(format!(
            "select submission_id, field_id::text, field_value from {s}.field_outputs"
        )))
        .fetch_all(pool)
        .await?;
        let owner: HashMap<Uuid, Uuid> = rows.iter().map(|r| (r.0, r.1)).collect();
        let mut by_submission: HashMap<Uuid, BTreeMap<String, Value>> = HashMap::new();
        for (submission, field, value) in outputs {
            if let Some(user) = owner.get(&submission) {
                checks.available.insert((*user, field.clone()));
            }
            by_submission
                .entry(submission)
                .or_default()
                .insert(field, value);
        }
        for (id, user, version, data, submitted) in &rows {
            stored.insert(
                (*user, tool.slug.clone()),
                (i64::from(*version), data.clone()),
            );
            let expected: BTreeMap<String, Value> = submitted
                .as_ref()
                .map(|d| submissions::extract_outputs(tool, d).into_iter().collect())
                .unwrap_or_default();
            if by_submission.remove(id).unwrap_or_default() != expected {
                checks.outputs_mismatch += 1;
            }
            if submitted.is_some() {
                checks.submitted.insert((*user, tool.slug.clone()));
            }
        }
        checks.orphan_outputs += by_submission.len();
    }
    Ok((stored, checks))
}

/// Every acknowledged save is stored, at its version or a later one, and the
/// latest acknowledged version with the data acknowledged.
fn judge_saves(acks: &Acks, stored: &Saves, verdicts: &mut Verdicts) {
    let mut latest = Saves::new();
    for (user, slug, version, data) in &acks.saves {
        let entry = latest
            .entry((*user, slug.clone()))
            .or_insert((-1, Value::Null));
        if *version > entry.0 {
            *entry = (*version, data.clone());
        }
    }
    let acknowledged = acks.saves.len();
    let mut lost = 0;
    for (user, slug, version, _) in &acks.saves {
        match stored.get(&(*user, slug.clone())) {
            Some((stored_version, _)) if stored_version >= version => {}
            _ => lost += 1,
        }
    }
    let mut stale = 0;
    for (key, (version, data)) in &latest {
        if let Some((stored_version, stored_data)) = stored.get(key)
            && stored_version == version
            && stored_data != data
        {
            stale += 1;
        }
    }
    verdicts.check(
        format!(
            "acknowledged saves present: {acknowledged} acknowledged, {} found, {lost} lost, {stale} with other data than acknowledged",
            acknowledged - lost
        ),
        lost == 0 && stale == 0,
    );
    verdicts.check(
        format!(
            "every acknowledged save wrote over the version its If-Match named: {} did not",
            acks.unseen_overwrites
        ),
        acks.unseen_overwrites == 0,
    );
}

async fn judge_new_users(pool: &PgPool, acks: &Acks, verdicts: &mut Verdicts) -> Result<()> {
    let synced: HashSet<String> =
        db::query_scalar::<String>("select lms_user_id from shared.users")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let missing_users = acks
        .new_users
        .iter()
        .filter(|l| !synced.contains(*l))
        .count();
    verdicts.check(
        format!(
            "acknowledged new users present: {} acknowledged, {} found",
            acks.new_users.len(),
            acks.new_users.len() - missing_users
        ),
        missing_users == 0,
    );
    Ok(())
}

/// Every completed tool has its submission, and no tool is open without the
/// fields it requires.
async fn judge_progress(
    pool: &PgPool,
    registry: &Registry,
    checks: &Invariants,
    verdicts: &mut Verdicts,
) -> Result<()> {
    let progress: Vec<(Uuid, String, String)> =
        db::query_as("select user_id, tool_slug::text, status::text from shared.user_progress")
            .fetch_all(pool)
            .await?;
    let mut completed_without = 0;
    let mut unlocked_without = 0;
    for (user, slug, status) in &progress {
        let Some(tool) = registry.tool(slug) else {
            continue;
        };
        if status == "completed" && !checks.submitted.contains(&(*user, slug.clone())) {
            completed_without += 1;
        }
        if status != "locked"
            && tool
                .required_dependencies()
                .any(|d| !checks.available.contains(&(*user, d.field.clone())))
        {
            unlocked_without += 1;
        }
    }
    verdicts.check(
        format!("every completed tool has its submission and outputs: {completed_without} without"),
        completed_without == 0,
    );
    verdicts.check(
        format!("no tool open without its required fields: {unlocked_without} found"),
        unlocked_without == 0,
    );
    Ok(())
}
