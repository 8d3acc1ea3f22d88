//! A small, fixed set of demo data for `make run`: two organizations, a user of
//! each role, and a few submissions. Loading it twice changes nothing.

use std::fmt;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::registry::Registry;
use crate::tool_sql;

pub struct DemoUser {
    pub lms_user_id: &'static str,
    pub email: &'static str,
    pub full_name: &'static str,
    pub role: &'static str,
    pub organization: &'static str,
}

pub const ORGANIZATIONS: [(&str, &str); 2] = [
    ("demo", "Demo Coaching Co"),
    ("northwind", "Northwind Traders"),
];

pub const USERS: [DemoUser; 5] = [
    DemoUser {
        lms_user_id: "64a000000000000000000001",
        email: "admin@demo.fasttrack.test",
        full_name: "Ada Admin",
        role: "admin",
        organization: "demo",
    },
    DemoUser {
        lms_user_id: "64a000000000000000000002",
        email: "guru@demo.fasttrack.test",
        full_name: "Gus Guru",
        role: "guru",
        organization: "demo",
    },
    DemoUser {
        lms_user_id: "64a000000000000000000003",
        email: "alice@demo.fasttrack.test",
        full_name: "Alice Founder",
        role: "user",
        organization: "demo",
    },
    DemoUser {
        lms_user_id: "64a000000000000000000004",
        email: "bob@demo.fasttrack.test",
        full_name: "Bob Builder",
        role: "user",
        organization: "demo",
    },
    DemoUser {
        lms_user_id: "64a000000000000000000005",
        email: "carol@northwind.fasttrack.test",
        full_name: "Carol Northwind",
        role: "user",
        organization: "northwind",
    },
];

/// Loads the demo data unless the demo organization already exists.
/// Returns whether anything was written.
pub async fn seed(pool: &PgPool, registry: &Registry) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let created: Option<Uuid> = sqlx::query_scalar(
        "insert into shared.organizations (slug, name) values ($1, $2)
         on conflict (slug) do nothing returning id",
    )
    .bind(ORGANIZATIONS[0].0)
    .bind(ORGANIZATIONS[0].1)
    .fetch_optional(&mut *tx)
    .await?;
    if created.is_none() {
        return Ok(false);
    }
    for (slug, name) in &ORGANIZATIONS[1..] {
        sqlx::query(
            "insert into shared.organizations (slug, name) values ($1, $2) on conflict (slug) do nothing",
        )
        .bind(slug)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }

    let (slugs, statuses): (Vec<&str>, Vec<&str>) = registry
        .tools()
        .iter()
        .map(|t| {
            let status = if t.starts_unlocked() {
                "unlocked"
            } else {
                "locked"
            };
            (t.slug.as_str(), status)
        })
        .unzip();
    let mut ids = Vec::new();
    for user in &USERS {
        let (id, organization_id): (Uuid, Uuid) = sqlx::query_as(
            "insert into shared.users (lms_user_id, email, full_name, role, organization_id)
             select $1, $2, $3, $4, o.id from shared.organizations o where o.slug = $5
             returning id, organization_id",
        )
        .bind(user.lms_user_id)
        .bind(user.email)
        .bind(user.full_name)
        .bind(user.role)
        .bind(user.organization)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "insert into shared.user_progress (user_id, tool_slug, status, unlocked_at)
             select $1, t.slug, t.status, case when t.status = 'unlocked' then current_timestamp end
             from unnest($2::text[], $3::text[]) as t(slug, status)",
        )
        .bind(id)
        .bind(&slugs)
        .bind(&statuses)
        .execute(&mut *tx)
        .await?;
        ids.push((id, organization_id));
    }

    let woop = json!({
        "wish": "Grow the bakery into three neighbourhood shops",
        "outcome": "A second shop open and profitable within a year",
        "obstacle": "I try to do every job myself",
        "plan": "If I catch myself doing a task someone else can do, I hand it over that day",
    });
    let (alice, alice_org) = ids[2];
    let (bob, bob_org) = ids[3];
    save(
        &mut tx,
        registry,
        "woop",
        alice,
        alice_org,
        &woop,
        "submitted",
    )
    .await?;
    let know_thyself = json!({ "dream": "Bread that brings the street together" });
    save(
        &mut tx,
        registry,
        "know-thyself",
        alice,
        alice_org,
        &know_thyself,
        "draft",
    )
    .await?;
    let woop_draft = json!({ "wish": "Launch the workshop's online store" });
    save(
        &mut tx,
        registry,
        "woop",
        bob,
        bob_org,
        &woop_draft,
        "draft",
    )
    .await?;

    tx.commit().await?;
    Ok(true)
}

async fn save(
    tx: &mut sqlx::PgConnection,
    registry: &Registry,
    slug: &str,
    user_id: Uuid,
    organization_id: Uuid,
    data: &Value,
    status: &str,
) -> Result<(), sqlx::Error> {
    let tool = registry.tool(slug).expect("demo tools are in the registry");
    let (submission_id, _version): (Uuid, i32) =
        sqlx::query_as(tool_sql::upsert_submission(&tool.schema))
            .bind(user_id)
            .bind(organization_id)
            .bind(data)
            .bind(status)
            .fetch_one(&mut *tx)
            .await?;
    let filled = tool
        .outputs
        .iter()
        .filter(|o| data.get(&o.key).is_some())
        .count();
    let percentage = (filled * 100 / tool.outputs.len().max(1)) as i32;
    if status == "submitted" {
        let (fields, values): (Vec<&str>, Vec<&Value>) = tool
            .outputs
            .iter()
            .filter_map(|o| data.get(&o.key).map(|v| (o.field.as_str(), v)))
            .unzip();
        sqlx::query(tool_sql::replace_field_outputs(&tool.schema))
            .bind(submission_id)
            .bind(&fields)
            .bind(&values)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "update shared.user_progress set status = 'completed', progress_percentage = $3,
                 started_at = coalesce(started_at, current_timestamp), completed_at = current_timestamp
             where user_id = $1 and tool_slug = $2",
        )
        .bind(user_id)
        .bind(slug)
        .bind(percentage)
        .execute(&mut *tx)
        .await?;
        let dependents: Vec<&str> = registry.dependents(tool).map(|t| t.slug.as_str()).collect();
        sqlx::query(
            "update shared.user_progress set status = 'unlocked', unlocked_at = current_timestamp
             where user_id = $1 and tool_slug = any($2) and status = 'locked'",
        )
        .bind(user_id)
        .bind(&dependents)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "update shared.user_progress set status = 'in_progress', progress_percentage = $3,
                 started_at = coalesce(started_at, current_timestamp)
             where user_id = $1 and tool_slug = $2",
        )
        .bind(user_id)
        .bind(slug)
        .bind(percentage)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// What is in the database, for `make run` to print.
#[derive(Debug)]
pub struct Summary {
    pub tool_schemas: i64,
    pub organizations: i64,
    pub users_by_role: Vec<(String, i64)>,
    pub progress_by_status: Vec<(String, i64)>,
    /// (sprint, slug, drafts, submitted, outputs) for tools with any submission.
    pub submissions: Vec<(i32, String, i64, i64, i64)>,
}

pub async fn summary(pool: &PgPool, registry: &Registry) -> Result<Summary, sqlx::Error> {
    let tool_schemas: i64 =
        sqlx::query_scalar("select count(*) from pg_namespace where nspname like 'sprint\\_%'")
            .fetch_one(pool)
            .await?;
    let organizations: i64 = sqlx::query_scalar("select count(*) from shared.organizations")
        .fetch_one(pool)
        .await?;
    let users_by_role =
        sqlx::query_as("select role::text, count(*) from shared.users group by role order by role")
            .fetch_all(pool)
            .await?;
    let progress_by_status = sqlx::query_as(
        "select status::text, count(*) from shared.user_progress group by status order by status",
    )
    .fetch_all(pool)
    .await?;
    let counts: Vec<(i32, i64, i64, i64)> = sqlx::query_as(tool_sql::submission_counts(registry))
        .fetch_all(pool)
        .await?;
    let submissions = counts
        .into_iter()
        .filter(|(_, drafts, submitted, _)| drafts + submitted > 0)
        .filter_map(|(sprint, drafts, submitted, outputs)| {
            let tool = registry
                .tools()
                .iter()
                .find(|t| i32::from(t.sprint) == sprint)?;
            Some((sprint, tool.slug.clone(), drafts, submitted, outputs))
        })
        .collect();
    Ok(Summary {
        tool_schemas,
        organizations,
        users_by_role,
        progress_by_status,
        submissions,
    })
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tool schemas:   {}", self.tool_schemas)?;
        writeln!(f, "organizations:  {}", self.organizations)?;
        let pairs = |v: &[(String, i64)]| {
            v.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "users:          {}", pairs(&self.users_by_role))?;
        writeln!(f, "tool progress:  {}", pairs(&self.progress_by_status))?;
        writeln!(f, "submissions:")?;
        for (sprint, slug, drafts, submitted, outputs) in &self.submissions {
            writeln!(
                f,
                "  {sprint:>2} {slug:<28} {drafts} draft, {submitted} submitted, {outputs} output fields"
            )?;
        }
        Ok(())
    }
}
