//! The options of `fasttrack-bench run`.

use std::path::PathBuf;

/// The seed of the generated databases and the sampled requests.
pub const SEED: u64 = 42;

/// The parts of a run, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// recompute-unlocks: the full sweep at two sizes (three with
    /// `--sweep-users`), and a scheduled run with 1% of the users changed.
    Recompute,
    /// Each route under wrk beside pgbench running its SQL.
    Load,
    /// Round trips per request, from pg_stat_statements.
    RoundTrips,
    /// Cold starts, peak memory and binary sizes of the Lambda binaries.
    Functions,
    /// Data rights: an export beside pgbench, an erasure's statements and time.
    Rights,
    /// Staff reports over one large organization: roster pages, the funnel
    /// and three staff actions (two reads, a comment written) beside
    /// pgbench, the audit row's share, the CSV's memory.
    Reports,
}

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Users in the large database (routes, recompute budget).
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Users in the small database (recompute growth).
    #[arg(long, default_value_t = 10_000)]
    pub small_users: usize,
    /// Also sweep a database of this many users (1000000 for the full
    /// sweep's scaling at a million; off by default: generating it takes
    /// about 55 minutes on 2 cores and 47 GB of disk). Kept between runs
    /// with `--reuse`, as the others.
    #[arg(long)]
    pub sweep_users: Option<usize>,
    /// Members of the one organization the staff reports are measured on.
    #[arg(long, default_value_t = 10_000)]
    pub organization_members: usize,
    /// Seconds per load measurement (3 keeps `make bench` under 15 minutes on
    /// 2 cores with the load at seven concurrencies, the release build aside).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Repeats of each measurement (the recompute, the audit row's share);
    /// the table shows medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Repeats of each load measurement at each concurrency (wrk, then
    /// pgbench); medians per concurrency. A route's best and its SQL's peak
    /// are each already the best of the concurrencies' runs.
    #[arg(long, default_value_t = 1)]
    pub load_runs: usize,
    /// The load's concurrencies: a route's best and its SQL's peak are
    /// taken over them.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    pub concurrency: Vec<usize>,
    /// Where `fasttrack`, the function binaries and the hello-world are.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    #[arg(long, default_value_t = 31)]
    pub cold_runs: usize,
    #[arg(long, default_value_t = 200)]
    pub rss_invocations: usize,
    #[arg(long, default_value_t = 20)]
    pub round_trip_requests: usize,
    /// Keep databases generated earlier with the same size and seed.
    #[arg(long)]
    pub reuse: bool,
    #[arg(long)]
    pub pgbench: Option<PathBuf>,
    /// A transaction-mode pooler (PgBouncer) in front of DATABASE_URL's server:
    /// the route functions' cold starts are also measured through it, as
    /// production runs them.
    #[arg(long)]
    pub pooler_url: Option<String>,
    /// Only these parts (all when absent).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Also write the results, with the machine, as Markdown here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Options {
    pub fn runs(&self, section: Section) -> bool {
        self.only.is_empty() || self.only.contains(&section)
    }
}
