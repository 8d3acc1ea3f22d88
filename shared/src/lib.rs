//! The Fast Track backend's one library. The Lambda binaries in `functions/`
//! and the `fasttrack` CLI are thin shells around what lives here.
//!
//! From the bottom up (a module imports only from the layers below it; see
//! docs/architecture.md):
//!
//! - [`foundation`]: settings, secrets, the pool, the error type, logging;
//! - [`registry`]: the tool catalogue from `config/`, validated; schema names
//!   and the only place run-time SQL is made ([`registry::sql`]);
//! - [`access`]: who may see whose rows, the one rule every read joins through;
//! - [`http`]: the route table, requests, answers, CORS;
//! - the features, each with its rules, its SQL and its handler:
//!   [`tools`] (the tools described as data), [`progress`], [`dependencies`],
//!   [`submissions`], [`identity`] (users,
//!   organizations, webhooks), [`sessions`] (launches and tokens), and
//!   [`unlocks`] (the scheduled recompute);
//! - [`audit`]: the log of every staff read and change, written by the
//!   statement or transaction it records;
//! - [`migrate`] (schemas and migrations) and [`demo`] (the local demo data);
//! - [`startup`] (every function's cold start) and [`app`] (the façade that
//!   dispatches a route to its feature).

pub mod access;
pub mod app;
pub mod audit;
pub mod demo;
pub mod dependencies;
pub mod foundation;
pub mod http;
pub mod identity;
pub mod migrate;
pub mod progress;
pub mod registry;
pub mod reports;
pub mod rights;
pub mod sessions;
pub mod staff;
pub mod startup;
pub mod submissions;
pub mod tools;
pub mod unlocks;

pub use registry::Registry;
