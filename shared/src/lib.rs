//! The Fast Track backend's one library. The Lambda binaries in `functions/` and
//! the `fasttrack` CLI are thin shells around what lives here.

pub mod db;
pub mod demo;
pub mod migrate;
pub mod registry;
pub mod tool_sql;

pub use registry::Registry;
