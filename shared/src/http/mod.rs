//! Transport details shared by the Lambda binaries and the local server.

pub mod body;
pub mod cors;
pub mod events;
pub mod routes;
