//! Who may see whose rows: the one access rule.
//!
//! A bearer token only says who the caller is ([`Caller`]). What they may see
//! is decided inside the SQL statement that reads the data, from the caller's
//! row in `shared.users` as it is at that moment, never from a check made
//! before the statement or from anything the token carries:
//!
//! - every user sees themself;
//! - an **admin** sees everyone;
//! - a **guru** sees the users of their own organization (and nobody when
//!   they have none);
//! - anyone else sees nobody else. A user they may not see answers like one
//!   who does not exist (404), so that ids cannot be probed.
//!
//! Every statement that reads a user's data joins the caller (`a`) to the
//! target (`t`) through [`visible_to_caller!`].

use uuid::Uuid;

/// The signed-in user: the subject of a valid bearer token. It carries no
/// role: roles are read in the statement that reads the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub Uuid);

impl Caller {
    pub fn id(self) -> Uuid {
        self.0
    }
}

/// The rule as SQL: `t` (the target user's `shared.users` row) is visible to
/// `a` (the caller's). A macro, so that statements can be `concat!`-ed
/// constants.
macro_rules! visible_to_caller {
    () => {
        "(a.id = t.id or a.role = 'admin' or (a.role = 'guru' and a.organization_id is not null and a.organization_id = t.organization_id))"
    };
}
pub(crate) use visible_to_caller;
