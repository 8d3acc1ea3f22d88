//! The thin HTTP layer between API Gateway (or the local server) and the
//! features: the route table, reading a request, writing an answer, CORS, and
//! the example events. It knows no feature: `app` maps a matched route to its
//! feature's handler.

pub mod body;
pub mod context;
pub mod cors;
pub mod cursor;
pub mod events;
pub mod request;
pub mod response;
pub mod routes;
pub mod stream;

pub use context::Context;
pub use request::Request;
pub use response::Response;
