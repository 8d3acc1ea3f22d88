//! The Fast Track backend's one library. The Lambda binaries in `functions/` and
//! the `fasttrack` CLI are thin shells around what lives here.
//!
//! - `registry`: the tool catalogue from `config/`, validated, and schema names;
//! - `migrate`: SQL migrations and tool schemas, with drift detection;
//! - `tool_sql`: the only place SQL text is assembled at run time;
//! - `users`, `progress`, `dependencies`, `submissions`, `recompute`, `webhooks`:
//!   the domain, each module about one thing the service does;
//! - `auth`, `config`, `error`, `http`, `rfc3339`, `app`: how requests get in and out;
//! - `logging`: the log setup every binary shares.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod demo;
pub mod dependencies;
pub mod error;
pub mod http;
pub mod logging;
pub mod migrate;
pub mod progress;
pub mod recompute;
pub mod registry;
pub mod rfc3339;
pub mod secrets;
pub mod submissions;
pub mod tool_sql;
pub mod users;
pub mod webhooks;

pub use registry::Registry;
