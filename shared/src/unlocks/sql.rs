//! The statements of the scheduled recompute.

use crate::registry::Registry;
use crate::registry::sql::{Branches, Sql, expand, producer_schemas};

/// The candidates of one batch of the scheduled recompute, as CTEs: the locked
/// registry tools of the users in the id range `($1, $2]` whose producer tools
/// are all completed.
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
/// Binds: $1 exclusive lower and $2 inclusive upper user id; $3 every registry
/// slug, with $4 the bits of its required fields, $5 its own bit, $6 the bits of
/// the tools producing its required fields; $7 the all-zero tool string.
///
/// The range's size is known only from its bounds, so a generic plan (which a
/// named statement gets after five runs) guesses it badly: run these unnamed.
macro_rules! recompute_candidates {
    () => {
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
            where p.user_id > $1 and p.user_id <= $2
            group by p.user_id
        ), candidates as materialized (
            select b.user_id, t.tool_slug, t.needs
            from batch b join tools t
              on (b.locked & t.bit) <> $7::varbit
             and (b.completed & t.producers) = t.producers
        )"
    };
}

/// What one batch of the scheduled recompute needs, and in the steady state
/// its only work besides reading the batch's user ids: how many users the id
/// range `($1, $2]` holds, how many progress rows they have for registry tools,
/// and how many unlock candidates (`recompute_candidates!`, binds $1 to $7).
/// All three come from one snapshot, so a user created in the range since the
/// batch was read counts on both sides; rows are missing unless present =
/// users x tools (a user has at most one row per tool). Nothing here depends
/// on the tool schemas, so it is cheap to plan; the unlock statement
/// ([`recompute_unlocks`]), with a branch per producer schema, runs only when
/// rows are missing or there is a candidate. Returns one row: users, present,
/// candidates.
pub const SURVEY: &str = concat!(
    "with ",
    recompute_candidates!(),
    r"
    select (select count(*) from shared.users u where u.id > $1 and u.id <= $2) as users,
           (select coalesce(sum(present), 0)::bigint from batch) as present,
           (select count(*) from candidates) as candidates"
);

/// One batch of the scheduled recompute: unlock every candidate
/// (`recompute_candidates!`, binds $1 to $7) of the users in the id range
/// `($1, $2]` whose required fields are all available in the producers'
/// `field_outputs`. A user's available fields are one bit string.
///
/// Binds, after the candidates' seven: $8/$9 every required field id and its
/// bit; $10 the all-zero field string. Returns the unlocked (user, slug) pairs.
pub fn recompute_unlocks(registry: &Registry) -> Sql {
    let required = registry
        .tools()
        .iter()
        .flat_map(|t| t.required_dependencies().map(|d| d.field.as_str()));
    expand(
        UNLOCK,
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

const UNLOCK: &str = concat!(
    "with ",
    recompute_candidates!(),
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
);
