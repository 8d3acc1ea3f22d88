//! Everything the harness takes from the `shared` crate, the service's own
//! code: imported here only, so that a module moving inside `shared` changes
//! this file alone.

pub use shared::auth::{self, TokenKeys};
pub use shared::config::{ApiSettings, Secret};
pub use shared::http::events::{Placeholders, render};
pub use shared::registry::{Registry, Tool};
pub use shared::{db, migrate, progress, recompute, submissions, tool_sql, users, webhooks};
