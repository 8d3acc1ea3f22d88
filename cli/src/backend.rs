//! Everything the CLI takes from the `shared` crate, where the logic lives:
//! imported here only, so that a module moving inside `shared` changes this
//! file alone.

pub use shared::app::{App, error_response};
pub use shared::config::{
    ApiSettings, DatabaseSettings, Environment, Layered, Secret, SignatureMode, Source,
};
pub use shared::db::PoolerMode;
pub use shared::error::ApiError;
pub use shared::http::cors::Cors;
pub use shared::http::events::{Placeholders, render};
pub use shared::users::{LmsUser, Membership};
pub use shared::{Registry, auth, db, demo, logging, migrate, recompute, registry};

#[cfg(test)]
pub use shared::http::routes::ROUTES;
