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
//! A guru sees a person's progress (the tools' statuses) but of their **work**
//! (what a submission holds, and the outputs other tools read from it) only
//! what was saved while the person was in the guru's organization: a new
//! organization's guru does not read what someone wrote before joining, and
//! the guru of the organization they left reads nothing of theirs any more.
//! The person and admins see all of it.
//!
//! Every statement that reads a user's data joins the caller (`a`) to the
//! target (`t`) through [`visible_to_caller!`] (most of them as the CTEs of
//! [`caller_and_target!`]), and reads their work through
//! [`work_visible_to_caller!`]. The caller is read from `shared.callers`, the
//! users whose account is open: a person whose erasure is requested can no
//! longer use a token, whatever it says.

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

/// One read of a user's data: who reads it, whose it is, and the request,
/// which the audit log records when the two differ.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub caller: Uuid,
    pub target: Uuid,
    pub request_id: &'a str,
}

impl Reading<'_> {
    /// A user reading their own data (never audited).
    pub fn own(user: Uuid) -> Reading<'static> {
        Reading {
            caller: user,
            target: user,
            request_id: "",
        }
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

/// The caller and the target user of a statement that reads a user's data,
/// as its first two CTEs: `caller`, the caller's row in `shared.callers` (none
/// when their account is not open), and `target`, the target's row in
/// `shared.users` only when [`visible_to_caller!`] lets the caller see them.
/// The statement joins them as `a` and `t`. Each is a materialized CTE read by
/// its primary key, so the planner plans each lookup alone and the rule as one
/// row compared with one row. Written as one join (`shared.callers a join
/// shared.users t on t.id = $2 and` the rule), the rule's OR between two
/// references to `shared.users` made the planner weigh the table's indexes for
/// it: two thirds of a progress read's planning, which behind a transaction
/// pooler (every statement unnamed) is paid on every call.
/// `caller_and_target!("$1", "$2")`.
macro_rules! caller_and_target {
    ($caller:literal, $target:literal) => {
        concat!(
            "caller as materialized (
            select * from shared.callers where id = ",
            $caller,
            "
        ), target as materialized (
            select t.* from caller a, (select * from shared.users where id = ",
            $target,
            " offset 0) t
            where ",
            $crate::access::visible_to_caller!(),
            "
        )"
        )
    };
}
pub(crate) use caller_and_target;

/// The rule for a piece of `t`'s work, as SQL: `a` sees it when they are `t`
/// or an admin, or when, as a guru of `t`'s organization, it was saved in that
/// organization since `t` joined it. `$organization` is the organization the
/// work records (every save writes the saver's organization into the
/// submission); `$saved_at` is when it was saved (the submission's
/// `updated_at` for its data, `submitted_at` for what it submitted, an
/// output's `created_at`). `t.organization_joined_at` is null for a membership
/// older than migration 0012, which then counts from the start.
///
/// Work from an earlier stay in the same organization counts as before joining:
/// the rule errs towards hiding. Used with [`visible_to_caller!`], which
/// decides whether `t` is seen at all.
macro_rules! work_visible_to_caller {
    ($organization:literal, $saved_at:literal) => {
        concat!(
            "(a.id = t.id or a.role = 'admin' or (a.role = 'guru' and a.organization_id is not null",
            " and a.organization_id = t.organization_id and ",
            $organization,
            " = a.organization_id and ",
            $saved_at,
            " >= coalesce(t.organization_joined_at, '-infinity'::timestamptz)))"
        )
    };
}
pub(crate) use work_visible_to_caller;
