//! One file per command of `fasttrack`; `args.rs` has their options.

pub mod check_config;
pub mod demo;
pub mod erasures;
pub mod export;
pub mod graph;
pub mod launch;
pub mod migrate;
pub mod recompute;
pub mod render_event;
pub mod serve;
pub mod summary;
pub mod token;
pub mod tool_schemas_sql;
