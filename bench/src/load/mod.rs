//! Per-route load: wrk against the local server, and pgbench running the exact
//! statements the route executes, for the same users and tools, at the same
//! concurrency. The statements come from the `shared` crate itself (the same
//! constants and builders the handlers use), so the two cannot drift apart.

mod call;
mod pgbench;
mod sample;
mod submit;
mod sync_user;
mod wrk;

pub use call::{Bind, Body, CALLS, Call, Route, Statement, bearer, pg_array};
pub use pgbench::{
    find_pgbench, percentiles_ms, pgbench_args, pgbench_statement, run_pgbench_timed,
};
pub use sample::sample;
pub use submit::submit_call;
pub use sync_user::launch_files;
pub use wrk::{Throughput, run_wrk, wrk_script, wrk_threads};
