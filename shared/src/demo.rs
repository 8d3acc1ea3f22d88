//! A small, fixed set of demo data for `make run`: two organizations, a user of
//! each role, and a few submissions; and a third organization of
//! [`ROSTER_MEMBERS`] members spread through the curriculum, with its guru,
//! for the staff reports. Loading it twice changes nothing.

use std::fmt;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::foundation::steps::Steps;
use crate::identity::users::{self, LmsUser, Membership};
use crate::registry::sql::{Branches, Sql, expand};
use crate::registry::{Forms, Registry};
use crate::submissions::{self, Budget, Save, SaveRequest, SubmissionStatus};

pub struct DemoUser {
    pub lms_user_id: &'static str,
    pub email: &'static str,
    pub full_name: &'static str,
    pub role: &'static str,
    pub organization: &'static str,
}

pub const ORGANIZATIONS: [(&str, &str); 3] = [
    ("demo", "Demo Coaching Co"),
    ("northwind", "Northwind Traders"),
    ("riverside", "Riverside Accelerator"),
];

/// The guru of the roster demo's organization (`riverside`).
pub const ROSTER_GURU: DemoUser = DemoUser {
    lms_user_id: "64a000000000000000000100",
    email: "coach@riverside.fasttrack.test",
    full_name: "Rita Riverside",
    role: "guru",
    organization: "riverside",
};

/// How many participants the roster demo's organization has.
pub const ROSTER_MEMBERS: usize = 40;

const FIRST_NAMES: [&str; 10] = [
    "Amara", "Bruno", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun",
];
const LAST_NAMES: [&str; 4] = ["Okafor", "Lindqvist", "Moreau", "Tanaka"];

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

/// Loads the demo data unless the demo admin already exists, through the same
/// code paths as the API (user sync, save and submit). Returns whether anything
/// was written. The admin is written last, so a run cut short is completed by
/// the next one (the syncs are upserts) rather than taken for done.
pub async fn seed(pool: &db::Pool, registry: &Registry) -> Result<bool, ApiError> {
    seed_with(pool, registry, ROSTER_MEMBERS, &()).await
}

/// [`seed`] with `members` participants in the roster demo's organization (at
/// least 2), telling `steps` of each.
pub async fn seed_with(
    pool: &db::Pool,
    registry: &Registry,
    members: usize,
    steps: &dyn Steps,
) -> Result<bool, ApiError> {
    if members < 2 {
        return Err(ApiError::Internal(
            "the roster demo needs at least 2 members".into(),
        ));
    }
    let (admin, others) = USERS.split_first().expect("the demo has users");
    let exists: bool = pool
        .read(async |conn| {
            db::query_scalar("select exists (select 1 from shared.users where lms_user_id = $1)")
                .bind(admin.lms_user_id)
                .fetch_one(conn)
                .await
        })
        .await?;
    if exists {
        return Ok(false);
    }
    let mut ids = Vec::new();
    for user in others {
        ids.push(sync_user(pool, registry, user).await?);
    }

    let (alice, bob) = (ids[1], ids[2]);
    let woop = json!({
        "wish": "Grow the bakery into three neighbourhood shops",
        "outcome": ["A second shop open and profitable within a year"],
        "obstacle": [{"problem": "I try to do every job myself"}],
        "plan": "If I catch myself doing a task someone else can do, I hand it over that day",
    });
    save(
        pool,
        registry,
        "woop",
        alice,
        woop,
        SubmissionStatus::Submitted,
    )
    .await?;
    let know_thyself = json!({ "dream": "Bread that brings the street together" });
    save(
        pool,
        registry,
        "know-thyself",
        alice,
        know_thyself,
        SubmissionStatus::Draft,
    )
    .await?;
    let woop_draft = json!({ "wish": "Launch the workshop's online store" });
    save(
        pool,
        registry,
        "woop",
        bob,
        woop_draft,
        SubmissionStatus::Draft,
    )
    .await?;
    seed_roster(pool, registry, members, steps).await?;
    sync_user(pool, registry, admin).await?;
    Ok(true)
}

/// The roster demo: `members` participants of `riverside` ([`ROSTER_MEMBERS`]
/// unless told otherwise), member
/// `i` having submitted the first tools of the registry (more members early
/// in the curriculum than late, one through all of it), every third with a
/// draft of the next, and every fifth stuck: no activity for two weeks or more.
async fn seed_roster(
    pool: &db::Pool,
    registry: &Registry,
    members: usize,
    steps: &dyn Steps,
) -> Result<(), ApiError> {
    sync_user(pool, registry, &ROSTER_GURU).await?;
    let tools = registry.tools();
    let last = members - 1;
    steps.begin("members", members as u64);
    for i in 0..members {
        let first = FIRST_NAMES[i % FIRST_NAMES.len()];
        let family = LAST_NAMES[i / FIRST_NAMES.len() % LAST_NAMES.len()];
        let member = DemoUser {
            lms_user_id: "",
            email: "",
            full_name: "",
            role: "user",
            organization: "riverside",
        };
        // 24 characters, as LearnWorlds' ids; the first hundred as they always were.
        let lms_user_id = match i {
            0..100 => format!("64a0000000000000000002{i:02}"),
            _ => format!("64a00000000000001{i:07}"),
        };
        // The names repeat past their combinations; the emails never do.
        let round = i / (FIRST_NAMES.len() * LAST_NAMES.len());
        let email = format!(
            "{}.{}{}@riverside.fasttrack.test",
            first.to_lowercase(),
            family.to_lowercase(),
            if round == 0 {
                String::new()
            } else {
                round.to_string()
            }
        );
        let name = format!("{first} {family}");
        let id = sync_as(pool, registry, &member, &lms_user_id, &email, &name).await?;
        let submitted = i * i * tools.len() / (last * last);
        let mut done = 0;
        for tool in &tools[..submitted] {
            let status = SubmissionStatus::Submitted;
            // A tool still locked (its inputs come from a tool later in the
            // registry) ends the member's walk; any other refusal is a fault.
            match save(pool, registry, &tool.slug, id, filled(tool, first), status).await {
                Ok(_) => done += 1,
                Err(ApiError::Conflict {
                    code: "tool_locked",
                    ..
                }) => break,
                Err(error) => return Err(error),
            }
        }
        if i % 3 == 1
            && let Some(next) = tools.get(done)
        {
            let draft = json!({});
            // A tool still locked refuses the draft; the member just has none.
            let _ = save(
                pool,
                registry,
                &next.slug,
                id,
                draft,
                SubmissionStatus::Draft,
            )
            .await;
        }
        if i % 5 == 2 {
            let days = 14 + (i % 60) as i32;
            pool.transaction(async |conn| {
                db::query(
                    "update shared.users
                     set last_activity_at = coalesce(last_activity_at, created_at) - make_interval(days => $2),
                         created_at = created_at - make_interval(days => $2)
                     where id = $1",
                )
                .bind(id)
                .bind(days)
                .execute(&mut *conn)
                .await?;
                Ok::<_, ApiError>(())
            })
            .await?;
        }
        steps.step();
    }
    steps.end();
    Ok(())
}

/// A submission of `tool` that fills every output, each value of its form's
/// shape (a submit checks them).
fn filled(tool: &crate::registry::Tool, author: &str) -> Value {
    let form = Forms::embedded().tool(&tool.slug);
    tool.outputs
        .iter()
        .map(|o| {
            let text = format!("{author}'s {}", o.key);
            let value = form
                .and_then(|form| form.output(&o.key))
                .map_or_else(|| json!(text), |output| output.shape.example(&text));
            (o.key.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One demo user, synced as a LearnWorlds event would, then given its role.
async fn sync_user(
    pool: &db::Pool,
    registry: &Registry,
    user: &DemoUser,
) -> Result<Uuid, ApiError> {
    sync_as(
        pool,
        registry,
        user,
        user.lms_user_id,
        user.email,
        user.full_name,
    )
    .await
}

/// `user`'s role and organization, with this identity.
async fn sync_as(
    pool: &db::Pool,
    registry: &Registry,
    user: &DemoUser,
    lms_user_id: &str,
    email: &str,
    full_name: &str,
) -> Result<Uuid, ApiError> {
    let company = ORGANIZATIONS
        .iter()
        .find(|(slug, _)| *slug == user.organization)
        .map(|(_, name)| *name);
    let tag = format!("org:{}", user.organization);
    let lms_user = LmsUser {
        lms_user_id: lms_user_id.into(),
        email: email.into(),
        full_name: full_name.into(),
        organization: Membership::from_tags([tag.as_str()], company),
    };
    pool.transaction(async |conn| {
        let synced = users::sync(conn, registry, &lms_user, false).await?;
        // Roles are granted by this service's admins, never by LearnWorlds.
        db::query("update shared.users set role = $2 where id = $1")
            .bind(synced.id)
            .bind(user.role)
            .execute(&mut *conn)
            .await?;
        Ok::<_, ApiError>(synced.id)
    })
    .await
}

async fn save(
    pool: &db::Pool,
    registry: &Registry,
    slug: &str,
    user: Uuid,
    data: Value,
    status: SubmissionStatus,
) -> Result<(), ApiError> {
    let tool = registry.tool(slug).expect("demo tools are in the registry");
    let Value::Object(data) = data else {
        unreachable!("demo data are objects")
    };
    let save = Save {
        tool,
        user,
        request: SaveRequest { data, status },
        if_match: None,
        idempotency: None,
        budget: Budget::FREE,
    };
    submissions::save(pool, registry, &save).await?;
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

pub async fn summary(pool: &db::Pool, registry: &Registry) -> Result<Summary, sqlx::Error> {
    pool.read(async |conn| summarize(conn, registry).await)
        .await
}

async fn summarize(
    conn: &mut sqlx::PgConnection,
    registry: &Registry,
) -> Result<Summary, sqlx::Error> {
    let tool_schemas: i64 =
        db::query_scalar("select count(*) from pg_namespace where nspname like 'sprint\\_%'")
            .fetch_one(&mut *conn)
            .await?;
    let organizations: i64 = db::query_scalar("select count(*) from shared.organizations")
        .fetch_one(&mut *conn)
        .await?;
    let users_by_role =
        db::query_as("select role::text, count(*) from shared.users group by role order by role")
            .fetch_all(&mut *conn)
            .await?;
    let progress_by_status = db::query_as(
        "select status::text, count(*) from shared.user_progress group by status order by status",
    )
    .fetch_all(&mut *conn)
    .await?;
    let counts: Vec<(i32, i64, i64, i64)> = db::query_as(submission_counts(registry))
        .fetch_all(&mut *conn)
        .await?;
    let submissions = counts
        .into_iter()
        .filter(|(_, drafts, submitted, _)| drafts + submitted > 0)
        .filter_map(|(position, drafts, submitted, outputs)| {
            let tool = registry.tools().get(usize::try_from(position).ok()?)?;
            let sprint = i32::from(tool.sprint);
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

/// Submissions and outputs per tool, across every tool schema, in one
/// statement: one row per registry tool, by its position in the registry.
fn submission_counts(registry: &Registry) -> Sql {
    expand(
        "{branches}\norder by position",
        None,
        Some(Branches {
            each: "select {i}::int as position, count(*) filter (where status = 'draft') as drafts, \
                   count(*) filter (where status = 'submitted') as submitted, \
                   (select count(*) from {s}.field_outputs) as outputs from {s}.submissions",
            none: "select 0 as position, 0::bigint, 0::bigint, 0::bigint where false",
            schemas: registry.tools().iter().map(|t| &t.schema).collect(),
        }),
    )
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
