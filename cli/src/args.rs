//! The command line: every command and its options, as clap reads them.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use shared::unlocks::recompute;

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
pub enum Command {
    /// Apply the SQL migrations, then give every registry tool its schema.
    /// Fails, naming the schema, when the database has drifted from the registry.
    ///
    /// Example: `DATABASE_URL=postgres://... fasttrack migrate --runtime-url postgres://fasttrack_lambda:...@host/fasttrack`
    Migrate {
        #[command(flatten)]
        database: Database,
        /// The route functions' connection URL: its login is made (or its
        /// password set) as a member of fasttrack_runtime, as the migrate
        /// function does with RUNTIME_DATABASE_SECRET_ARN.
        #[arg(long, env = "RUNTIME_DATABASE_URL", hide_env_values = true)]
        runtime_url: Option<String>,
        /// The erase-users function's connection URL: its login is made (or
        /// its password set) as a member of fasttrack_eraser, as the migrate
        /// function does with ERASER_DATABASE_SECRET_ARN.
        #[arg(long, env = "ERASER_DATABASE_URL", hide_env_values = true)]
        eraser_url: Option<String>,
    },
    /// Make the user with this email the deployment's first admin (they have
    /// signed in once). Refuses when an admin exists: admins set roles with
    /// PATCH /users/{id}. Recorded in the audit log as bootstrap.admin.
    BootstrapAdmin {
        #[command(flatten)]
        database: Database,
        #[arg(long)]
        email: String,
    },
    /// Print `SELECT shared.create_tool_schema(...)` for every tool, for psql.
    ///
    /// Example: `fasttrack tool-schemas-sql | psql "$DATABASE_URL"`
    ToolSchemasSql,
    /// Print the tool dependency graph.
    ///
    /// Example: `fasttrack graph --format dot | dot -Tsvg > graph.svg`
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Load the demo data (once) and print a summary of the database. Only into
    /// a database on this machine, unless told otherwise: the demo has an admin.
    ///
    /// Example: `DATABASE_URL=postgres://postgres@127.0.0.1:54329/fasttrack fasttrack demo`
    /// (a large organization to try the roster on: `fasttrack demo --members 2000`)
    Demo {
        #[command(flatten)]
        database: Database,
        /// How many participants the roster demo's organization (Riverside) gets.
        #[arg(long, default_value_t = shared::demo::ROSTER_MEMBERS as u32, value_parser = clap::value_parser!(u32).range(2..=100_000))]
        members: u32,
        /// Load it into a database on another host too.
        #[arg(long, env = "FASTTRACK_DEMO_ANY_HOST")]
        any_host: bool,
    },
    /// Print a summary of what is in the database.
    ///
    /// Example: `fasttrack summary --database-url postgres://...`
    Summary {
        #[command(flatten)]
        database: Database,
    },
    /// Serve every route locally through the same handlers the Lambdas run.
    /// Settings come from the environment, as on Lambda.
    ///
    /// Example: `PORT=3000 fasttrack serve` (or `make run`)
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
    /// Print a bearer token for an existing user (local use: needs JWT_SIGNING_KEY
    /// and JWT_PUBLIC_KEYS).
    ///
    /// Example: `fasttrack token --email alice@demo.fasttrack.test`
    Token {
        #[arg(long)]
        email: String,
        /// A token that expired an hour ago, signed like any other: what a
        /// client's refresh is tested with (the server answers it with a 401
        /// `invalid_token` saying it has expired).
        #[arg(long)]
        expired: bool,
    },
    /// Print a signed launch body for `POST /sessions` (needs LEARNWORLDS_LAUNCH_SECRET).
    ///
    /// Example: `fasttrack launch --lms-user-id 64b0... --email ada@example.com --name "Ada Lovelace"`
    Launch {
        #[arg(long)]
        lms_user_id: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// The launch's nonce (default: a fresh random one).
        #[arg(long, conflicts_with = "no_nonce")]
        nonce: Option<String>,
        /// Sign the launch without a nonce, as a sender that has none does.
        #[arg(long)]
        no_nonce: bool,
    },
    /// Fill an example event from events/ with local values (a token and id for
    /// the user with this email, the local secrets), for `cargo lambda invoke`.
    ///
    /// Example: `fasttrack render-event events/own-progress.json > /tmp/event.json`
    RenderEvent {
        file: PathBuf,
        #[arg(long, default_value = "alice@demo.fasttrack.test")]
        email: String,
    },
    /// Run the scheduled unlock recompute once.
    ///
    /// Example: `fasttrack recompute --batch-size 500`
    Recompute {
        #[command(flatten)]
        database: Database,
        #[arg(long, default_value_t = recompute::DEFAULT_BATCH_SIZE)]
        batch_size: i64,
    },
    /// Export a person's whole record (GDPR Art. 15 and 20) as JSON, or
    /// everyone's, as the operator: any size, each one snapshot, audited.
    ///
    /// Examples: `fasttrack export --email ada@example.com --out ada.json`;
    /// `fasttrack export --all --out-dir exports/`
    #[command(group(clap::ArgGroup::new("whom").required(true).args(["email", "user_id", "all"])))]
    Export {
        #[command(flatten)]
        database: Database,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        user_id: Option<uuid::Uuid>,
        /// Everyone, one `<id>.json` each in `--out-dir`.
        #[arg(long, requires = "out_dir")]
        all: bool,
        /// The file to write (default: standard output).
        #[arg(long, conflicts_with = "all")]
        out: Option<PathBuf>,
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Erasures by hand: the scheduled job once, or a restore's re-application.
    ///
    /// Examples: `fasttrack erasures run`; `fasttrack erasures reapply --tombstones-from $LIVE`
    Erasures {
        #[command(subcommand)]
        action: Erasures,
    },
    /// Validate config files on disk (defaults: the repo's config/).
    ///
    /// Example: `fasttrack check-config --forms config/tool-forms.json`
    CheckConfig {
        #[arg(long, default_value = "config/tool-registry.json")]
        registry: PathBuf,
        #[arg(long, default_value = "config/dependencies.json")]
        dependencies: PathBuf,
        #[arg(long, default_value = "config/tool-forms.json")]
        forms: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum Erasures {
    /// Erase everyone whose erasure request's cool-off is over, as the
    /// erase-users function does every hour.
    ///
    /// Example: `ERASURE_HASH_KEY=... fasttrack erasures run`
    Run {
        #[command(flatten)]
        database: Database,
        #[command(flatten)]
        key: ErasureKey,
    },
    /// After restoring an older backup: import the tombstones of a newer copy
    /// of the database, then erase again everyone a tombstone names.
    ///
    /// Example: `fasttrack erasures reapply --database-url $RESTORED --tombstones-from $LIVE`
    Reapply {
        #[command(flatten)]
        database: Database,
        #[command(flatten)]
        key: ErasureKey,
        /// A newer copy of the database (the live one, or the newest backup
        /// restored elsewhere) whose tombstones the restore may lack.
        #[arg(long, env = "TOMBSTONES_DATABASE_URL", hide_env_values = true)]
        tombstones_from: Option<String>,
    },
}

/// The key of the tombstones' hashes: the deployment's own, or the hashes
/// match nobody.
#[derive(Args)]
pub struct ErasureKey {
    #[arg(
        long = "erasure-hash-key",
        env = "ERASURE_HASH_KEY",
        hide_env_values = true
    )]
    pub erasure_hash_key: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

impl Command {
    fn database_mut(&mut self) -> Option<&mut Database> {
        match self {
            Command::Migrate { database, .. }
            | Command::Demo { database, .. }
            | Command::Summary { database }
            | Command::BootstrapAdmin { database, .. }
            | Command::Recompute { database, .. }
            | Command::Export { database, .. }
            | Command::Erasures {
                action: Erasures::Run { database, .. } | Erasures::Reapply { database, .. },
            } => Some(database),
            _ => None,
        }
    }
}

/// The command line, with `--database-url` and `--pooler-mode` taken as a pair:
/// a URL given on the command line is never paired with the environment's
/// pooler mode (it would name another server's), so without `--pooler-mode`
/// it is reached in session mode.
pub fn parse_command_line() -> Command {
    let matches = Cli::command().get_matches();
    let mut command = Cli::from_arg_matches(&matches)
        .unwrap_or_else(|error| error.exit())
        .command;
    let given = |args: &clap::ArgMatches, id: &str| {
        args.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    };
    // The command's own arguments: `erasures run` has them one level down.
    let mut args = matches.subcommand().map(|(_, args)| args);
    while let Some((_, inner)) = args.and_then(|a| a.subcommand()) {
        args = Some(inner);
    }
    if let (Some(args), Some(database)) = (args, command.database_mut())
        && given(args, "database_url")
        && !given(args, "pooler_mode")
    {
        database.pooler_mode = "session".into();
    }
    command
}

/// The database a command works on: the URL and the pooler in front of it go
/// together, on the command line or both from the environment.
#[derive(Args)]
pub struct Database {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// `transaction` behind a transaction-mode pooler (PgBouncer, RDS Proxy):
    /// unnamed statements, as the functions send there.
    #[arg(long, env = "DATABASE_POOLER_MODE", default_value = "session", value_parser = ["session", "transaction"])]
    pub pooler_mode: String,
}
