//! Unlocking tools. A submit unlocks what it completes in its own statement
//! (`crate::submissions::sql`); the scheduled pass here ([`recompute`])
//! catches up everything else: tools added to the registry, and unlocks a
//! submit could not make.

pub mod recompute;
pub mod sql;

pub use recompute::{
    CONNECTIONS, DEFAULT_BATCH_SIZE, Housekeeping, Report, Scope, registry_fingerprint, run,
    run_full, run_with,
};
