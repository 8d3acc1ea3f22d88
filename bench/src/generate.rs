//! Realistic data, fast: N users across organizations, each partway through the
//! curriculum, with submissions and outputs shaped like the catalogue's, and
//! progress rows consistent with the unlock rules. Deterministic for a seed
//! (ids and timestamps come from the seed too), written with COPY in batches.

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::rng::Rng;
use shared::Registry;
use shared::registry::Tool;

pub struct Spec {
    pub users: usize,
    pub organizations: usize,
    pub seed: u64,
    pub batch: usize,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub users: u64,
    pub progress_rows: u64,
    pub submissions: u64,
    pub field_outputs: u64,
}

const WORDS: [&str; 16] = [
    "customers",
    "team",
    "growth",
    "margin",
    "values",
    "trust",
    "market",
    "quarter",
    "pricing",
    "brand",
    "focus",
    "cash",
    "service",
    "rhythm",
    "dream",
    "process",
];

fn sentence(rng: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A CSV field, quoted.
fn csv(out: &mut String, value: &str) {
    out.push('"');
    out.push_str(&value.replace('"', "\"\""));
    out.push('"');
}

/// Timestamps in 2026, from the seed.
fn timestamp(rng: &mut Rng) -> String {
    let day = 1 + rng.below(28);
    let month = 1 + rng.below(10);
    format!(
        "2026-{month:02}-{day:02} {:02}:{:02}:00+00",
        rng.below(24),
        rng.below(60)
    )
}

struct ToolRows {
    submissions: String,
    outputs: String,
}

pub async fn generate(
    pool: &PgPool,
    registry: &Registry,
    spec: &Spec,
) -> Result<Counts, sqlx::Error> {
    let mut rng = Rng::new(spec.seed);
    // Two connections, so that PostgreSQL loads on both cores: the database,
    // not the generator, is the slow side of a COPY.
    let mut conn = pool.acquire().await?;
    let mut second = pool.acquire().await?;
    let bulk = bulk_load(&mut conn).await && bulk_load(&mut second).await;
    let run = rng.next() % 1_000_000;

    let mut organizations = Vec::with_capacity(spec.organizations);
    let mut csv_orgs = String::new();
    for i in 0..spec.organizations {
        let id = rng.uuid();
        organizations.push(id);
        let _ = writeln!(csv_orgs, "{id},\"Bench Org {i}\",\"bench-{run}-org-{i}\"");
    }
    copy_in(
        &mut conn,
        "shared.organizations (id, name, slug)",
        &csv_orgs,
    )
    .await?;

    let bar = ProgressBar::new(spec.users as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} users ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix("generate");
    let mut counts = Counts::default();
    // A batch is written while the next one is made; batches are still
    // written one after another, so the database does not depend on timing.
    // `writing` always holds the last write, which hands both connections
    // back; it starts as a write of nothing.
    let mut writing: JoinHandle<Result<Connections, sqlx::Error>> =
        tokio::spawn(async move { Ok((conn, second)) });
    let mut start = 0;
    while start < spec.users {
        let end = (start + spec.batch).min(spec.users);
        let batch = make_batch(
            &mut rng,
            registry.tools(),
            &organizations,
            run,
            start..end,
            &mut counts,
        );
        let connections = writing.await.map_err(join_error)??;
        bar.inc((end - start) as u64);
        writing = tokio::spawn(write_batch(connections, batch));
        start = end;
    }
    let (mut conn, mut second) = writing.await.map_err(join_error)??;
    bar.finish();
    if bulk {
        for c in [&mut conn, &mut second] {
            sqlx::query("reset session_replication_role")
                .execute(&mut **c)
                .await?;
        }
        what_the_triggers_keep(&mut conn).await?;
    }
    sqlx::query("analyze").execute(&mut *conn).await?;
    Ok(counts)
}

/// Loads as `pg_restore --disable-triggers` does, when the login may
/// (a superuser, as on the harness's own cluster): no foreign-key check and
/// no trigger per row. The data is consistent by construction, and
/// [`what_the_triggers_keep`] then writes at once what the triggers would
/// have kept row by row. Without the right, the load runs with its triggers.
async fn bulk_load(conn: &mut sqlx::PgConnection) -> bool {
    sqlx::query("set session_replication_role = replica")
        .execute(conn)
        .await
        .is_ok()
}

/// What the triggers of a row-by-row load would have left: each member's
/// completed tools and last activity (`shared.track_member_activity`), and
/// the funnel's counts (`shared.count_progress`, as its exact recount). The
/// recompute's marks are left out: the generated statuses already match the
/// data, as a first full sweep would leave them.
async fn what_the_triggers_keep(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update shared.users u
         set tools_completed = p.completed, last_activity_at = p.last_activity_at
         from (select user_id,
                      count(*) filter (where status = 'completed')::smallint as completed,
                      max(coalesce(updated_at, created_at))
                          filter (where status in ('in_progress', 'completed')) as last_activity_at
               from shared.user_progress group by user_id) p
         where p.user_id = u.id and (p.completed > 0 or p.last_activity_at is not null)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("select shared.recount_funnel()")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

type Connections = (PoolConnection<Postgres>, PoolConnection<Postgres>);

fn join_error(e: tokio::task::JoinError) -> sqlx::Error {
    sqlx::Error::Protocol(format!("writing a batch: {e}"))
}

/// One batch's rows, as COPY text: the users, and the jobs that follow them.
struct Batch {
    users: String,
    /// The progress, and each tool's submissions then their outputs: each job
    /// is a list of (table and columns, rows), written in order.
    jobs: Vec<Vec<(String, String)>>,
}

fn make_batch(
    rng: &mut Rng,
    tools: &[Tool],
    organizations: &[Uuid],
    run: u64,
    range: std::ops::Range<usize>,
    counts: &mut Counts,
) -> Batch {
    let mut users = String::new();
    let mut progress = String::new();
    let mut per_tool: Vec<ToolRows> = tools
        .iter()
        .map(|_| ToolRows {
            submissions: String::new(),
            outputs: String::new(),
        })
        .collect();
    for i in range {
        let user = rng.uuid();
        let org = organizations[rng.below(organizations.len() as u64) as usize];
        let role = if rng.chance(2) { "guru" } else { "user" };
        let _ = writeln!(
            users,
            "{user},\"bench-{run}-{i:08}\",\"bench{run}-{i}@bench.fasttrack.test\",\"Bench User {i}\",{org},{role}"
        );
        counts.users += 1;
        // How far this user has come: a sprint they are working on.
        let frontier = rng.below(tools.len() as u64 + 1) as u8;
        let mut available: HashSet<&str> = HashSet::new();
        for (index, tool) in tools.iter().enumerate() {
            let unlocked = tool
                .required_dependencies()
                .all(|d| available.contains(d.field.as_str()));
            let status = if !unlocked {
                "locked"
            } else if tool.sprint < frontier && !(tool.optional && rng.chance(50)) {
                "completed"
            } else if tool.sprint == frontier {
                "in_progress"
            } else {
                "unlocked"
            };
            let at = timestamp(rng);
            let (percentage, started, completed) = match status {
                "completed" => (100, at.as_str(), at.as_str()),
                "in_progress" => (50, at.as_str(), ""),
                _ => (0, "", ""),
            };
            let unlocked_at = if status == "locked" { "" } else { at.as_str() };
            let _ = writeln!(
                progress,
                "{user},{},{status},{percentage},{unlocked_at},{started},{completed}",
                tool.slug
            );
            counts.progress_rows += 1;
            if status == "completed" || status == "in_progress" {
                submission(
                    rng,
                    &mut per_tool[index],
                    tool,
                    user,
                    org,
                    status == "completed",
                    &at,
                    counts,
                );
                if status == "completed" {
                    available.extend(tool.outputs.iter().map(|o| o.field.as_str()));
                }
            }
        }
    }
    let mut jobs = vec![vec![(
        "shared.user_progress (user_id, tool_slug, status, progress_percentage, unlocked_at, started_at, completed_at)".to_owned(),
        progress,
    )]];
    jobs.extend(tools.iter().zip(per_tool).map(|(tool, rows)| {
        let s = tool.schema.quoted();
        vec![
            (
                format!("{s}.submissions (id, user_id, organization_id, data, submitted_data, status, version, submitted_at, completed_at)"),
                rows.submissions,
            ),
            (
                format!("{s}.field_outputs (submission_id, field_id, field_value)"),
                rows.outputs,
            ),
        ]
    }));
    // The largest first, so that the two connections finish together.
    jobs.sort_by_key(|job| {
        std::cmp::Reverse(job.iter().map(|(_, rows)| rows.len()).sum::<usize>())
    });
    Batch { users, jobs }
}

/// The users first (every other row refers to them), then the jobs on both
/// connections, each taking the next job left. Each table is written by one
/// connection, so the database is the same whichever connection takes a job.
async fn write_batch(
    (mut conn, mut second): Connections,
    batch: Batch,
) -> Result<Connections, sqlx::Error> {
    copy_in(
        &mut conn,
        "shared.users (id, lms_user_id, email, full_name, organization_id, role)",
        &batch.users,
    )
    .await?;
    let next = AtomicUsize::new(0);
    tokio::try_join!(
        copy_jobs(&mut conn, &batch.jobs, &next),
        copy_jobs(&mut second, &batch.jobs, &next)
    )?;
    Ok((conn, second))
}

/// Takes the next job until none is left.
async fn copy_jobs(
    conn: &mut sqlx::PgConnection,
    jobs: &[Vec<(String, String)>],
    next: &AtomicUsize,
) -> Result<(), sqlx::Error> {
    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
        for (target, rows) in job {
            copy_in(conn, target, rows).await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn submission(
    rng: &mut Rng,
    rows: &mut ToolRows,
    tool: &Tool,
    user: Uuid,
    org: Uuid,
    submitted: bool,
    at: &str,
    counts: &mut Counts,
) {
    let id = rng.uuid();
    let mut data = serde_json::Map::new();
    for (n, output) in tool.outputs.iter().enumerate() {
        if submitted || n % 2 == 0 {
            let words = 4 + rng.below(30) as usize;
            data.insert(
                output.key.clone(),
                serde_json::Value::String(sentence(rng, words)),
            );
        }
    }
    let data = serde_json::Value::Object(data);
    let text = data.to_string();
    let mut line = format!("{id},{user},{org},");
    csv(&mut line, &text);
    line.push(',');
    if submitted {
        csv(&mut line, &text);
    }
    let version = 1 + rng.below(3);
    let status = if submitted { "submitted" } else { "draft" };
    let when = if submitted { at } else { "" };
    let _ = writeln!(line, ",{status},{version},{when},{when}");
    rows.submissions.push_str(&line);
    counts.submissions += 1;
    if submitted {
        for output in &tool.outputs {
            let value = data[&output.key].to_string();
            let _ = write!(rows.outputs, "{id},{},", output.field);
            csv(&mut rows.outputs, &value);
            rows.outputs.push('\n');
            counts.field_outputs += 1;
        }
    }
}

async fn copy_in(
    conn: &mut sqlx::PgConnection,
    target: &str,
    rows: &str,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = conn
        .copy_in_raw(&format!("copy {target} from stdin with (format csv)"))
        .await?;
    copy.send(rows.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn checksum(pool: &PgPool, registry: &Registry) -> String {
        let mut tables = vec![
            "shared.organizations".to_owned(),
            "shared.users".to_owned(),
            "shared.user_progress".to_owned(),
        ];
        for tool in registry.tools() {
            tables.push(format!("{}.submissions", tool.schema.quoted()));
            tables.push(format!("{}.field_outputs", tool.schema.quoted()));
        }
        let mut digests = Vec::new();
        for table in tables {
            // field_outputs ids are generated by the database, and so are the
            // times rows were written (a user's last activity is their
            // progress rows' write time): compare the rest.
            let digest: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select md5(coalesce(string_agg(row_text, '|' order by row_text), '')) from (
                     select (to_jsonb(t) - 'id' - 'created_at' - 'updated_at' - 'last_activity_at')::text as row_text from {table} t) r"
            )))
            .fetch_one(pool)
            .await
            .unwrap();
            digests.push(digest);
        }
        digests.join(",")
    }

    async fn generated(pool: &PgPool, seed: u64) -> Counts {
        crate::database::migrate(pool).await.unwrap();
        let spec = Spec {
            users: 300,
            organizations: 7,
            seed,
            batch: 128,
        };
        generate(pool, Registry::embedded(), &spec).await.unwrap()
    }

    #[sqlx::test(migrations = false)]
    async fn generated_progress_obeys_the_unlock_rules(pool: PgPool) {
        let counts = generated(&pool, 11).await;
        assert_eq!(counts.users, 300);
        assert_eq!(
            counts.progress_rows,
            300 * Registry::embedded().tools().len() as u64
        );
        assert!(
            counts.submissions > 300 && counts.field_outputs > counts.submissions,
            "{counts:?}"
        );
        // The recompute finds nothing to create or unlock: statuses match the data.
        let service = shared::foundation::db::Pool::on_same_database(&pool, 2);
        let report = shared::unlocks::recompute::run(&service, Registry::embedded(), 100)
            .await
            .unwrap();
        assert!(!report.changed_anything(), "{report:?}");
        // Every completed tool has all its outputs; every submitted row has its submitted_data.
        let (missing, unsubmitted): (i64, i64) = sqlx::query_as(
            "select
                (select count(*) from shared.user_progress p
                 where p.status = 'completed' and p.tool_slug = 'woop'
                   and (select count(*) from sprint_00_woop.field_outputs fo
                        join sprint_00_woop.submissions s on s.id = fo.submission_id where s.user_id = p.user_id) <> 4),
                (select count(*) from sprint_00_woop.submissions where status = 'submitted' and submitted_data is null)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((missing, unsubmitted), (0, 0));
    }

    #[sqlx::test(migrations = false)]
    async fn a_bulk_load_leaves_what_its_triggers_would_have_kept(pool: PgPool) {
        let counts = generated(&pool, 13).await;
        // Each member's completed tools and last activity, as
        // shared.track_member_activity keeps them.
        let (wrong_completed, without_activity): (i64, i64) = sqlx::query_as(
            "select
                count(*) filter (where u.tools_completed <> p.completed),
                count(*) filter (where p.active and u.last_activity_at is null)
             from shared.users u
             join (select user_id, count(*) filter (where status = 'completed') as completed,
                          bool_or(status in ('in_progress', 'completed')) as active
                   from shared.user_progress group by user_id) p on p.user_id = u.id",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((wrong_completed, without_activity), (0, 0));
        // The funnel counts every progress row once, exactly.
        let (counted, deltas): (i64, i64) = sqlx::query_as(
            "select coalesce(sum(n), 0)::bigint, count(*) filter (where delta) from shared.funnel_counts",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((counted as u64, deltas), (counts.progress_rows, 0));
        // And a later write fires its triggers again: the load's mode ended.
        let (user, version): (Uuid, i32) =
            sqlx::query_as("select id, version from shared.users limit 1")
                .fetch_one(&pool)
                .await
                .unwrap();
        let bumped: i32 = sqlx::query_scalar(
            "update shared.users set role = 'guru' where id = $1 returning version",
        )
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(bumped, version + 1);
    }

    #[sqlx::test(migrations = false)]
    async fn the_same_seed_generates_the_same_data(pool: PgPool) {
        generated(&pool, 5).await;
        let first = checksum(&pool, Registry::embedded()).await;
        for table in [
            "shared.user_progress",
            "shared.users",
            "shared.organizations",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("truncate {table} cascade")))
                .execute(&pool)
                .await
                .unwrap();
        }
        let counts = generate(
            &pool,
            Registry::embedded(),
            &Spec {
                users: 300,
                organizations: 7,
                seed: 5,
                batch: 128,
            },
        )
        .await
        .unwrap();
        assert_eq!(counts.users, 300);
        assert_eq!(checksum(&pool, Registry::embedded()).await, first);
    }
}
