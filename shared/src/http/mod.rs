//! Transport details shared by the Lambda binaries and the local server.

pub mod body;
pub mod routes;
