//! The statements of the scheduled recompute.

use crate::registry::Registry;
use crate::registry::sql::{Branches, Sql, expand, producer_schemas};

/// Which users a batch of the scheduled recompute covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// A full sweep's: the users in the id range `($1, $2]`.
    Range,
    /// A run over the changed users': the users in `$1` (a uuid array, in id
    /// order), `$2` the last of them.
    Listed,
}

/// The candidates of one batch of the scheduled recompute, as CTEs: the locked
/// registry tools of the batch's users (`$users`, a condition on the progress
/// row `p`: see [`Batch`]) whose producer tools are all completed.
///
/// A field is available only once its producer tool is completed (a submit
/// writes its outputs and completes the tool in one statement), so one pass over
/// the batch's progress rows finds the candidates; only those are checked
/// against the producers' `field_outputs`, which decide. Tools and fields are
/// bits of bit strings, passed as text (`'0100'`). The pass folds each user's
/// rows into one row (`batch`): how many registry rows they have, and their
/// completed and their locked tools as two strings; a candidate is then a
/// locked tool whose producers are all among the completed ones.
///
/// Binds: $1 and $2 the batch's users ([`Batch`]); $3 every registry
/// slug, with $4 the bits of its required fields, $5 its own bit, $6 the bits of
/// the tools producing its required fields; $7 the all-zero tool string.
///
/// The range's size is known only from its bounds, so a generic plan (which a
/// named statement gets after five runs) guesses it badly: run these unnamed.
macro_rules! recompute_candidates {
    ($users:expr) => {
        concat!(
            r"tools as (
            select t.tool_slug, t.needs::varbit as needs, t.bit::varbit as bit,
                   t.producers::varbit as producers
            from unnest($3::text[], $4::text[], $5::text[], $6::text[])
                as t(tool_slug, needs, bit, producers)
        ), batch as (
            select p.user_id, count(*) as present,
                   coalesce(bit_or(t.bit) filter (where p.status = 'completed'), $7::varbit) as completed,
                   coalesce(bit_or(t.bit) filter (where p.status = 'locked'), $7::varbit) as locked
            from shared.user_progress p join tools t on t.tool_slug = p.tool_slug::text
            where ",
            $users,
            r"
            group by p.user_id
        ), candidates as materialized (
            select b.user_id, t.tool_slug, t.needs
            from batch b join tools t
              on (b.locked & t.bit) <> $7::varbit
             and (b.completed & t.producers) = t.producers
        )"
        )
    };
}

macro_rules! range_users {
    () => {
        "p.user_id > $1 and p.user_id <= $2"
    };
}

macro_rules! listed_users {
    () => {
        "p.user_id = any($1::uuid[]) and p.user_id <= $2"
    };
}

/// What one batch of the scheduled recompute needs, and in the steady state
/// its only work besides reading the batch's user ids: how many users the
/// batch holds, how many progress rows they have for registry tools,
/// and how many unlock candidates (`recompute_candidates!`, binds $1 to $7).
/// All three come from one snapshot, so a user created in the range since the
/// batch was read counts on both sides; rows are missing unless present =
/// users x tools (a user has at most one row per tool). Nothing here depends
/// on the tool schemas, so it is cheap to plan; the unlock statement
/// ([`recompute_unlocks`]), with a branch per producer schema, runs only when
/// rows are missing or there is a candidate. Returns one row: users, present,
/// candidates.
pub fn survey(batch: Batch) -> &'static str {
    match batch {
        Batch::Range => SURVEY_RANGE,
        Batch::Listed => SURVEY_LISTED,
    }
}

const SURVEY_RANGE: &str = concat!(
    "with ",
    recompute_candidates!(range_users!()),
    r"
    select (select count(*) from shared.users u where u.id > $1 and u.id <= $2) as users,
           (select coalesce(sum(present), 0)::bigint from batch) as present,
           (select count(*) from candidates) as candidates"
);

const SURVEY_LISTED: &str = concat!(
    "with ",
    recompute_candidates!(listed_users!()),
    r"
    select (select count(*) from shared.users u where u.id = any($1::uuid[])) as users,
           (select coalesce(sum(present), 0)::bigint from batch) as present,
           (select count(*) from candidates) as candidates"
);

/// One batch of the scheduled recompute: unlock every candidate
/// (`recompute_candidates!`, binds $1 to $7) of the batch's users whose required fields are all available in the producers'
/// `field_outputs`. A user's available fields are one bit string.
///
/// Binds, after the candidates' seven: $8/$9 every required field id and its
/// bit; $10 the all-zero field string. Returns the unlocked (user, slug) pairs.
pub fn recompute_unlocks(registry: &Registry, batch: Batch) -> Sql {
    let required = registry
        .tools()
        .iter()
        .flat_map(|t| t.required_dependencies().map(|d| d.field.as_str()));
    expand(
        match batch {
            Batch::Range => UNLOCK_RANGE,
            Batch::Listed => UNLOCK_LISTED,
        },
        None,
        Some(Branches {
            // `offset 0` keeps the subquery a per-user index probe.
            each: "select c.user_id, fo.field_id from candidate_users c
                 cross join lateral (
                     select fo.field_id::text as field_id from {s}.submissions ps
                     join {s}.field_outputs fo on fo.submission_id = ps.id
                     where ps.user_id = c.user_id and fo.field_id = any($8::text[])
                     offset 0
                 ) fo",
            none: "select null::uuid as user_id, null::text as field_id where false",
            schemas: producer_schemas(registry, required, None),
        }),
    )
}

macro_rules! unlock {
    ($users:expr) => {
        concat!(
            "with ",
            recompute_candidates!($users),
            r", candidate_users as (
            select distinct user_id from candidates
        ), field_bits as (
            select f.field_id, f.bit::varbit as bit
            from unnest($8::text[], $9::text[]) as f(field_id, bit)
        ), available as (
            {branches}
        ), have as (
            select av.user_id, bit_or(fb.bit) as fields
            from available av join field_bits fb on fb.field_id = av.field_id
            group by av.user_id
        )
        update shared.user_progress p set status = 'unlocked', unlocked_at = current_timestamp
        from candidates c
        left join have h on h.user_id = c.user_id
        where p.user_id = c.user_id and p.tool_slug = c.tool_slug and p.status = 'locked'
          and (coalesce(h.fields, $10::varbit) & c.needs) = c.needs
        returning p.user_id, p.tool_slug::text"
        )
    };
}

const UNLOCK_RANGE: &str = unlock!(range_users!());
const UNLOCK_LISTED: &str = unlock!(listed_users!());
