//! `fasttrack`: the commands developers and operators run by hand (and that the
//! Makefile wraps). All logic lives in the `shared` crate.

mod openapi;
mod serve;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use shared::app::App;
use shared::config::{ApiSettings, DatabaseSettings, Environment, Layered, SignatureMode, Source};
use shared::db::PoolerMode;
use shared::http::cors::Cors;
use shared::http::events::{Placeholders, render};
use shared::{Registry, auth, db, demo, migrate, recompute, registry};
use tracing::level_filters::LevelFilter;

#[derive(Parser)]
#[command(
    name = "fasttrack",
    about = "Fast Track backend: developer and operator commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the SQL migrations, then give every registry tool its schema.
    /// Fails, naming the schema, when the database has drifted from the registry.
    Migrate {
        #[command(flatten)]
        database: Database,
    },
    /// Print `SELECT shared.create_tool_schema(...)` for every tool, for psql.
    ToolSchemasSql,
    /// Print the tool dependency graph.
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Load the demo data (once) and print a summary of the database. Only into
    /// a database on this machine, unless told otherwise: the demo has an admin.
    Demo {
        #[command(flatten)]
        database: Database,
        /// Load it into a database on another host too.
        #[arg(long, env = "FASTTRACK_DEMO_ANY_HOST")]
        any_host: bool,
    },
    /// Print a summary of what is in the database.
    Summary {
        #[command(flatten)]
        database: Database,
    },
    /// Serve every route locally through the same handlers the Lambdas run.
    /// Settings come from the environment, as on Lambda.
    Serve {
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        /// Origins a browser may call from, as the template's CorsAllowedOrigins.
        #[arg(
            long,
            env = "CORS_ALLOWED_ORIGINS",
            value_delimiter = ',',
            default_value = "http://localhost:5173"
        )]
        cors_allowed_origins: Vec<String>,
    },
    /// Print a bearer token for an existing user (local use: needs JWT_SECRET).
    Token {
        #[arg(long)]
        email: String,
    },
    /// Print a signed launch body for `POST /sessions` (needs LEARNWORLDS_LAUNCH_SECRET).
    Launch {
        #[arg(long)]
        lms_user_id: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
    /// Fill an example event from events/ with local values (a token and id for
    /// the user with this email, the local secrets), for `cargo lambda invoke`.
    RenderEvent {
        file: PathBuf,
        #[arg(long, default_value = "alice@demo.fasttrack.test")]
        email: String,
    },
    /// Run the scheduled unlock recompute once.
    Recompute {
        #[command(flatten)]
        database: Database,
        #[arg(long, default_value_t = recompute::DEFAULT_BATCH_SIZE)]
        batch_size: i64,
    },
    /// Validate config files on disk (defaults: the repo's config/).
    CheckConfig {
        #[arg(long, default_value = "config/tool-registry.json")]
        registry: PathBuf,
        #[arg(long, default_value = "config/dependencies.json")]
        dependencies: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

impl Command {
    fn database_mut(&mut self) -> Option<&mut Database> {
        match self {
            Command::Migrate { database }
            | Command::Demo { database, .. }
            | Command::Summary { database }
            | Command::Recompute { database, .. } => Some(database),
            _ => None,
        }
    }
}

/// The command line, with `--database-url` and `--pooler-mode` taken as a pair:
/// a URL given on the command line is never paired with the environment's
/// pooler mode (it would name another server's), so without `--pooler-mode`
/// it is reached in session mode.
fn parse_command_line() -> Command {
    let matches = Cli::command().get_matches();
    let mut command = Cli::from_arg_matches(&matches)
        .unwrap_or_else(|error| error.exit())
        .command;
    let given = |args: &clap::ArgMatches, id: &str| {
        args.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    };
    if let (Some((_, args)), Some(database)) = (matches.subcommand(), command.database_mut())
        && given(args, "database_url")
        && !given(args, "pooler_mode")
    {
        database.pooler_mode = "session".into();
    }
    command
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = parse_command_line();
    let default_level = if matches!(command, Command::Serve { .. } | Command::Recompute { .. }) {
        LevelFilter::INFO
    } else {
        LevelFilter::WARN
    };
    shared::logging::init_local(default_level);
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `context: cause: ...`. A cause is left
/// out when the text before it already ends with it (sqlx's errors, for one,
/// print their source in their own message).
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !previous.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        previous = cause;
    }
    text
}

async fn run(command: Command) -> Result<()> {
    let registry = Registry::embedded();
    match command {
        Command::Migrate { database } => {
            let pool = connect(&database, Use::Migrate).await?;
            let mut conn = pool.acquire().await?;
            let report = migrate::run(&mut conn, registry).await?;
            conn.release();
            if report.is_noop() {
                println!(
                    "migrate: up to date ({} tool schemas)",
                    registry.tools().len()
                );
            } else {
                println!(
                    "migrate: applied {} migration(s) {:?}, created {} tool schema(s)",
                    report.applied_migrations.len(),
                    report.applied_migrations,
                    report.created_schemas.len()
                );
            }
        }
        Command::ToolSchemasSql => print!("{}", migrate::tool_schemas_sql(registry)),
        Command::Graph { format } => match format {
            GraphFormat::Mermaid => print!("{}", registry::to_mermaid(registry)),
            GraphFormat::Dot => print!("{}", registry::to_dot(registry)),
        },
        Command::Demo { database, any_host } => {
            if !any_host && !on_this_machine(&database.database_url) {
                bail!(
                    "the database is not on this machine: the demo data (an admin among it) \
                     goes into a local database only; pass --any-host to load it there anyway"
                );
            }
            let pool = connect(&database, Use::Service).await?;
            let loaded = demo::seed(&pool, registry).await?;
            println!(
                "{}",
                if loaded {
                    "demo data loaded"
                } else {
                    "demo data already present"
                }
            );
            print!("{}", demo::summary(&pool, registry).await?);
        }
        Command::Summary { database } => {
            let pool = connect(&database, Use::Service).await?;
            print!("{}", demo::summary(&pool, registry).await?);
        }
        Command::Serve {
            port,
            cors_allowed_origins,
        } => {
            let app = App::from_env(None).await?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("serving on {addr}"))?;
            print_banner(&app, port).await?;
            let local = serve::Local {
                app,
                cors: Cors::new(cors_allowed_origins),
                openapi: openapi_json()?.into(),
            };
            serve::serve(local, listener)
                .await
                .with_context(|| format!("serving on {addr}"))?;
        }
        Command::Token { email } => {
            let app = App::from_env(None).await?;
            let id = user_by_email(&app, &email).await?;
            println!("{}", app.issue_token(id)?.0);
        }
        Command::Launch {
            lms_user_id,
            email,
            name,
        } => {
            let secret = shared::config::Secret::new(
                Environment
                    .get("LEARNWORLDS_LAUNCH_SECRET")
                    .context("LEARNWORLDS_LAUNCH_SECRET is not set")?,
            );
            // What `POST /sessions` would refuse is refused here, not signed.
            shared::users::LmsUser {
                lms_user_id: lms_user_id.clone(),
                email: email.clone(),
                full_name: name.clone(),
                organization: shared::users::Membership::Unchanged,
            }
            .validate()?;
            if !auth::launch_fields_signable([&lms_user_id, &email, &name]) {
                bail!("a launch field may not contain a newline");
            }
            let timestamp = chrono_now();
            let signature = auth::sign_launch(&secret, &lms_user_id, &email, &name, timestamp);
            let body = serde_json::json!({
                "lms_user_id": lms_user_id, "email": email, "name": name,
                "timestamp": timestamp, "signature": signature,
            });
            println!("{body}");
        }
        Command::RenderEvent { file, email } => {
            let event =
                std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
            let app = App::from_env(None).await?;
            let user = user_by_email(&app, &email).await?;
            let launch = app.settings.launch_secret.as_ref().map(|secret| {
                let timestamp = chrono_now();
                let (id, mail, name) = ("64b000000000000000000003", "invoked@example.com", "Invoked Locally");
                let signature = auth::sign_launch(secret, id, mail, name, timestamp);
                serde_json::json!({"lms_user_id": id, "email": mail, "name": name, "timestamp": timestamp, "signature": signature})
                    .to_string()
            });
            let values = Placeholders {
                token: Some(app.issue_token(user)?.0),
                user_id: Some(user.to_string()),
                webhook_secret: app
                    .settings
                    .webhook_secret
                    .as_ref()
                    .map(|s| s.expose().to_owned()),
                launch_body: launch,
            };
            let rendered = render(&event, &values);
            print!("{}", sign_rendered_webhook(&app.settings, rendered)?);
        }
        Command::Recompute {
            database,
            batch_size,
        } => {
            let pool = connect(&database, Use::Recompute).await?;
            let report = recompute::run(&pool, registry, batch_size.max(1)).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::CheckConfig {
            registry,
            dependencies,
        } => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).with_context(|| path.display().to_string())
            };
            let checked = Registry::from_json(&read(&registry)?, &read(&dependencies)?)
                .with_context(|| {
                    format!(
                        "checking {} and {}",
                        registry.display(),
                        dependencies.display()
                    )
                })?;
            println!(
                "config is valid: {} tools, {} dependency fields, {} outputs",
                checked.tools().len(),
                checked
                    .tools()
                    .iter()
                    .map(|t| t.dependencies.len())
                    .sum::<usize>(),
                checked
                    .tools()
                    .iter()
                    .map(|t| t.outputs.len())
                    .sum::<usize>()
            );
        }
    }
    Ok(())
}

/// The database a command works on: the URL and the pooler in front of it go
/// together, on the command line or both from the environment.
#[derive(Args)]
struct Database {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// `transaction` behind a transaction-mode pooler (PgBouncer, RDS Proxy):
    /// unnamed statements, as the functions send there.
    #[arg(long, env = "DATABASE_POOLER_MODE", default_value = "session", value_parser = ["session", "transaction"])]
    pooler_mode: String,
}

/// What a command connects for: its statement limit is the one its function
/// has in template.yaml.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Reads and writes as the routes make them (DATABASE_STATEMENT_TIMEOUT_MS,
    /// 7 s by default).
    Service,
    /// The recompute: long set-based statements (60 s unless
    /// DATABASE_STATEMENT_TIMEOUT_MS says otherwise).
    Recompute,
    /// Migrations: a session of their own and no statement limit.
    Migrate,
}

/// A pool on the command's database, with the other `DATABASE_*` settings read
/// from the environment as the functions read them. It fails at once if the
/// database cannot be reached.
async fn connect(database: &Database, use_: Use) -> Result<db::Pool> {
    let mut values = HashMap::from([
        ("DATABASE_URL", database.database_url.clone()),
        ("DATABASE_POOLER_MODE", database.pooler_mode.clone()),
    ]);
    if use_ == Use::Recompute && Environment.get("DATABASE_STATEMENT_TIMEOUT_MS").is_none() {
        values.insert("DATABASE_STATEMENT_TIMEOUT_MS", "60000".into());
    }
    let mut settings = DatabaseSettings::from_source(&Layered {
        values,
        fallback: &Environment,
    })?;
    // The recompute needs two connections (one holds its lock).
    settings.max_connections = settings.max_connections.max(2);
    // By hand, right after a database starts, waiting a little longer is right.
    settings.acquire_timeout = settings.acquire_timeout.max(db::TOOL_ACQUIRE_TIMEOUT);
    if use_ == Use::Migrate {
        if settings.pooler_mode == PoolerMode::Transaction {
            bail!(
                "migrate takes session-level locks: point --database-url at PostgreSQL itself \
                 (or a session-mode pooler) with --pooler-mode session"
            );
        }
        settings.statement_timeout = std::time::Duration::ZERO;
    }
    let pool = db::Pool::new(&settings)?;
    pool.acquire().await?.release();
    Ok(pool)
}

async fn user_by_email(app: &App, email: &str) -> Result<uuid::Uuid> {
    let id: Option<uuid::Uuid> = app
        .pool
        .read(async |conn| {
            db::query_scalar("select id from shared.users where lower(email) = lower($1)")
                .bind(email)
                .fetch_optional(conn)
                .await
        })
        .await?;
    id.with_context(|| format!("no user has the email {email}"))
}

/// A rendered webhook event in `hmac-sha256` mode carries the HMAC of its body,
/// not the secret; any other event is returned as it is.
fn sign_rendered_webhook(settings: &ApiSettings, rendered: String) -> Result<String> {
    const HEADER: &str = "learnworlds-webhook-signature";
    let (SignatureMode::HmacSha256, Some(secret)) =
        (settings.webhook_signature_mode, &settings.webhook_secret)
    else {
        return Ok(rendered);
    };
    let mut event: serde_json::Value =
        serde_json::from_str(&rendered).context("the event is not JSON")?;
    let Some(body) = event["body"].as_str().map(str::to_owned) else {
        return Ok(rendered);
    };
    if let Some(header) = event["headers"].get_mut(HEADER) {
        *header = format!("v1={}", auth::sign_webhook(secret, body.as_bytes())).into();
        return Ok(serde_json::to_string_pretty(&event)?);
    }
    Ok(rendered)
}

/// Whether the database is on this machine (a loopback address, `localhost`
/// or a Unix socket): demo data and printed tokens are for such a database.
fn on_this_machine(database_url: &str) -> bool {
    let Ok(options) = database_url.parse::<sqlx::postgres::PgConnectOptions>() else {
        return false;
    };
    let host = options.get_host();
    host == "localhost"
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// openapi.yaml, compiled in and served as JSON.
fn openapi_json() -> Result<Vec<u8>> {
    let spec = openapi::document(Registry::embedded())?;
    Ok(serde_json::to_vec(&spec)?)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What `make run` shows before serving: who the demo users are, their tokens,
/// and a few requests to try.
async fn print_banner(app: &App, port: u16) -> Result<()> {
    let base = format!("http://127.0.0.1:{port}");
    let users: Vec<(uuid::Uuid, String, String)> = app
        .pool
        .read(async |conn| {
            db::query_as(
                "select id, email::text, role::text from shared.users order by role, email limit 12",
            )
            .fetch_all(conn)
            .await
        })
        .await
        .context("reading users")?;
    println!("\nFast Track API on {base}  (Ctrl-C stops it)\n");
    let local = Environment
        .get("DATABASE_URL")
        .is_some_and(|url| on_this_machine(&url));
    if !local {
        println!("  The database is not on this machine: no tokens are printed for its users.\n");
        return Ok(());
    }
    if users.len() == 12 {
        println!("  (the first 12 users; `make token EMAIL=...` makes a token for any other)");
    }
    let mut first_user_token = None;
    for (id, email, role) in &users {
        let (token, _) = app.issue_token(*id)?;
        println!("  {role:<5} {email:<34} {id}\n        token: {token}");
        if role == "user" && first_user_token.is_none() {
            first_user_token = Some(token);
        }
    }
    if let Some(token) = first_user_token {
        println!("\nTry:");
        println!("  curl -s {base}/health");
        println!("  curl -s -H 'Authorization: Bearer {token}' {base}/progress");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' {base}/tools/know-thyself/dependencies"
        );
        println!(
            "  curl -s -X PUT -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n       -d '{{\"data\": {{\"dream\": \"A bakery\"}}, \"status\": \"draft\"}}' {base}/tools/know-thyself/submission"
        );
    }
    println!();
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_is_described_with_its_context_and_without_repeated_causes() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let error = anyhow::Error::new(io).context("serving on 127.0.0.1:3000");
        assert_eq!(
            super::describe(&error),
            "serving on 127.0.0.1:3000: address in use"
        );
        // sqlx's message already ends with its source's.
        let refused = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let error = anyhow::Error::new(refused).context("connecting");
        assert_eq!(
            super::describe(&error),
            "connecting: error communicating with database: connection refused"
        );
    }

    #[test]
    fn the_openapi_document_is_served_as_json_with_every_path() {
        let json: serde_json::Value =
            serde_json::from_slice(&super::openapi_json().unwrap()).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        let paths = json["paths"].as_object().unwrap();
        for route in &shared::http::routes::ROUTES {
            // The save path is served once per tool (see openapi.rs).
            let path = route.path.replace("{slug}/submission", "woop/submission");
            assert!(paths.contains_key(&path), "{path}");
        }
    }
}
