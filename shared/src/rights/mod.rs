//! Data rights (GDPR): a person's whole record on request ([`export`]), and
//! their erasure: requested ([`requests`]), and after a cool-off carried out
//! by its own scheduled function and database role ([`eraser`]), leaving only
//! keyed hashes behind ([`crate::identity::tombstones`]), which a restore of
//! an older backup re-applies ([`reapply`]).

pub mod eraser;
pub mod export;
pub mod handler;
pub mod reapply;
pub mod requests;
