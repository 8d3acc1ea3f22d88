//! Who the participants are: LearnWorlds users synced into `shared.users`, with
//! their organization, from webhooks ([`webhooks`], signed as [`signature`]
//! checks, confirmed with LearnWorlds' API as [`learnworlds`] asks it) and from
//! session launches (`crate::sessions`).

pub mod handler;
pub mod learnworlds;
pub mod profile;
pub mod signature;
pub mod tombstones;
pub mod users;
pub mod webhooks;
