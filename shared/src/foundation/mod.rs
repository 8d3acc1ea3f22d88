//! What every feature stands on, and which knows nothing of them: typed
//! settings, secrets, the token keys, what a deployed stage refuses to start
//! with, the connection pool and how statements are sent, the one error type,
//! logging, and timestamps as the API writes them.
//!
//! Nothing here imports from outside `foundation`.

pub mod config;
pub mod db;
pub mod error;
pub mod hygiene;
pub mod keys;
pub mod logging;
pub mod out;
pub mod percent;
pub mod rfc3339;
pub mod secrets;
pub mod steps;
