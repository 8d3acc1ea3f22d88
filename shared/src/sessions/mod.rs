//! Sessions: a participant opens a tool from LearnWorlds with a signed launch
//! ([`launch`]: where its signature is checked), and gets a bearer token
//! ([`tokens`]: minted and verified, on [`crypto`], each signature checked
//! once per process: [`verified`]) for the API calls that follow, renewed
//! with a rotating refresh token ([`refresh`]).

pub mod crypto;
pub mod handler;
pub mod launch;
pub mod refresh;
pub mod tokens;
mod verified;

pub use tokens::{TokenKeys, authenticate};
