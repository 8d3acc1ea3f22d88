//! The reports' statements. Each is one statement: the caller's access is
//! decided inside it, and a read of people's data writes its audit row in a
//! data-modifying CTE (`audit`), which PostgreSQL runs to completion whether
//! or not the query reads it: if the row cannot be written, the read fails.

/// The staff member who may read organization `$2` (`null`: every user,
/// which only an admin may): an admin, or a guru of that organization. Empty
/// for anyone else, and for an organization that does not exist.
macro_rules! viewer {
    () => {
        "viewer as (
            select a.id, a.role from shared.callers a
            where a.id = $1 and case when $2::uuid is null then a.role = 'admin'
                else exists (select 1 from shared.organizations o where o.id = $2
                    and (a.role = 'admin' or (a.role = 'guru' and a.organization_id is not null
                         and a.organization_id = o.id))) end
        )"
    };
}

/// The statuses of member `p.id`'s tools in registry order, a letter each
/// (`L` locked, `U` unlocked, `P` in progress, `C` completed); a tool without
/// a progress row counts as its initial status. `$4` the slugs, `$5` the
/// initial statuses.
macro_rules! statuses {
    () => {
        "(select string_agg(case coalesce(up.status::text, r.initial)
                 when 'locked' then 'L' when 'unlocked' then 'U'
                 when 'in_progress' then 'P' when 'completed' then 'C' else '?' end, '' order by r.n)
          from unnest($4::text[], $5::text[]) with ordinality as r(slug, initial, n)
          left join shared.user_progress up on up.user_id = p.id and up.tool_slug = r.slug)"
    };
}

/// Where a roster page starts: `first`, the first page (the cursor's binds
/// are null), or `after` the cursor's (key, id). Two statements rather than
/// one with `$12 is null or ...`: a prepared statement's generic plan could not
/// use the keyset as an index condition, and page 90 would scan the pages
/// before it.
macro_rules! keyset {
    (first, $key:literal, $type:literal, $cmp:literal) => {
        "$11::text is null and $12::uuid is null"
    };
    (after, $key:literal, $type:literal, $cmp:literal) => {
        concat!(
            "(",
            $key,
            ", t.id) ",
            $cmp,
            " (cast($11::text as ",
            $type,
            "), $12::uuid)"
        )
    };
}

/// A roster statement: ordered by `$key` (of SQL type `$type`) `$dir`, then
/// id, from the start of the roster (`first`) or after (`$11`, `$12`) with
/// `$cmp`; audited as `$action`.
///
/// Binds: $1 caller, $2 organization, $3 request id, $4 slugs, $5 initial
/// statuses, $6 the filter's tool (or null), $7 its initial status, $8 the
/// statuses it matches, $9 stuck days (or null), $10 name or email prefix (or
/// null), $11 the cursor's key as text, $12 the cursor's id (both null on the
/// first page), $13 rows to fetch (the page plus one; null: all), $14 rows
/// shown (the audit's subjects; null: all).
macro_rules! roster {
    ($action:literal, $key:literal, $type:literal, $dir:literal, $cmp:literal, $page:ident) => {
        concat!(
            "with ",
            viewer!(),
            ", page as (
            select t.id, t.full_name::text as name, t.email::text as email, t.role::text as role,
                   t.tools_completed::bigint as completed, t.last_activity_at, t.last_login,
                   ",
            $key,
            " as k, (",
            $key,
            ")::text as sort_key
            from shared.users t
            where exists (select 1 from viewer) and t.organization_id = $2
              and ($6::text is null or coalesce(
                    (select p.status::text from shared.user_progress p
                     where p.user_id = t.id and p.tool_slug = $6), $7::text) = any($8::text[]))
              and ($9::int is null or coalesce(t.last_activity_at, t.created_at, '-infinity'::timestamptz)
                    < statement_timestamp() - make_interval(days => $9::int))
              and ($10::text is null or starts_with(lower(t.full_name), lower($10::text))
                   or starts_with(lower(t.email), lower($10::text)))
              and ",
            keyset!($page, $key, $type, $cmp),
            "
            order by ",
            $key,
            " ",
            $dir,
            ", t.id ",
            $dir,
            "
            limit $13::bigint
        ), audit as (
            insert into shared.audit_log (actor_id, actor_role, action, subjects, organization_id, request_id)
            select v.id, v.role, '",
            $action,
            "', array(select s.id from page s order by s.k ",
            $dir,
            ", s.id ",
            $dir,
            " limit $14::bigint), $2, $3::text
            from viewer v
            returning 1
        )
        select exists (select 1 from shared.callers where id = $1) as caller_exists,
               exists (select 1 from viewer) as visible,
               p.id, p.name, p.email, p.role, p.completed, p.last_activity_at, p.last_login, p.sort_key,
               ",
            statuses!(),
            " as statuses
        from (values (1)) as one left join page p on true
        order by p.k ",
            $dir,
            ", p.id ",
            $dir
        )
    };
}

/// The roster statements of one kind, by [sort][direction]: sorts name,
/// last activity, progress; directions ascending, descending.
macro_rules! orders {
    ($action:literal, $page:ident) => {
        [
            [
                roster!($action, "lower(t.full_name)", "text", "asc", ">", $page),
                roster!($action, "lower(t.full_name)", "text", "desc", "<", $page),
            ],
            [
                roster!(
                    $action,
                    "coalesce(t.last_activity_at, '-infinity'::timestamptz)",
                    "timestamptz",
                    "asc",
                    ">",
                    $page
                ),
                roster!(
                    $action,
                    "coalesce(t.last_activity_at, '-infinity'::timestamptz)",
                    "timestamptz",
                    "desc",
                    "<",
                    $page
                ),
            ],
            [
                roster!($action, "t.tools_completed", "smallint", "asc", ">", $page),
                roster!($action, "t.tools_completed", "smallint", "desc", "<", $page),
            ],
        ]
    };
}

/// A roster's first page, by [sort][direction].
pub const ROSTER_FIRST: [[&str; 2]; 3] = orders!("read.roster", first);
/// A roster's page after a cursor, by [sort][direction].
pub const ROSTER_AFTER: [[&str; 2]; 3] = orders!("read.roster", after);
/// The whole roster, for the CSV, by [sort][direction].
pub const ROSTER_CSV: [[&str; 2]; 3] = orders!("read.roster_csv", first);

/// The organizations the caller may see, by name then id, with their members
/// and completion. Binds: $1 caller, $2 the registry's tool count, $3 the
/// cursor's name, $4 its id (null: the first page), $5 rows (the page plus
/// one). Not audited: it names no member.
pub const ORGANIZATIONS: &str = "with caller as (
        select role, organization_id from shared.callers where id = $1
    ), page as (
        select o.id, o.name::text as name, o.slug::text as slug, s.members, s.completed, s.finished
        from shared.organizations o
        cross join lateral (
            select count(*) as members,
                   coalesce(sum(least(u.tools_completed, $2::int)), 0)::bigint as completed,
                   count(*) filter (where u.tools_completed >= $2::int) as finished
            from shared.users u where u.organization_id = o.id
        ) s
        where ((select role from caller) = 'admin'
               or ((select role from caller) = 'guru' and o.id = (select organization_id from caller)))
          and ($4::uuid is null or (o.name::text, o.id) > ($3::text, $4::uuid))
        order by o.name::text, o.id
        limit $5::bigint
    )
    select (select role::text from caller) as caller_role, page.*
    from (values (1)) as one left join page on true
    order by page.name, page.id";

/// Per tool, in registry order, how many members have each status; a tool's
/// members without a progress row are the count of `members` the four do not
/// cover, in its initial status. `$members` picks the members: one
/// organization's, or every user's (two statements, so that an
/// organization's is a range of its index in a generic plan too), and
/// `$counts` picks their rows of `shared.funnel_counts` as `c`. Binds: $1
/// caller, $2 organization (null: every user, for an admin), $3 request id,
/// $4 slugs, $5 initial statuses (unused here; bound so that every report
/// binds the same first five).
macro_rules! funnel {
    ($members:literal, $counts:literal) => {
        concat!(
            "with ",
            viewer!(),
            ", members as (
        select t.id from shared.users t
        where exists (select 1 from viewer) and ",
            $members,
            "
    ), counts as (
        select c.tool_slug::text as slug,
               sum(c.n) filter (where c.status = 'locked') as locked,
               sum(c.n) filter (where c.status = 'unlocked') as unlocked,
               sum(c.n) filter (where c.status = 'in_progress') as in_progress,
               sum(c.n) filter (where c.status = 'completed') as completed
        from shared.funnel_counts c
        where exists (select 1 from viewer) and ",
            $counts,
            "
        group by c.tool_slug
    ), audit as (
        insert into shared.audit_log (actor_id, actor_role, action, subjects, organization_id, request_id)
        select v.id, v.role, 'read.funnel', '{}', $2, $3::text from viewer v
        returning 1
    )
    select (select role::text from shared.callers where id = $1) as caller_role,
           exists (select 1 from viewer) as visible,
           (select count(*) from members) as members,
           r.slug, r.n,
           coalesce(c.locked, 0)::bigint as locked, coalesce(c.unlocked, 0)::bigint as unlocked,
           coalesce(c.in_progress, 0)::bigint as in_progress, coalesce(c.completed, 0)::bigint as completed
    from (values (1)) as one
    left join (unnest($4::text[], $5::text[]) with ordinality as r(slug, initial, n)
               left join counts c on c.slug = r.slug) on exists (select 1 from viewer)
    order by r.n"
        )
    };
}

/// One organization's funnel: its members' counts, kept by migration 0019's
/// triggers as their progress changes (an index range of a few hundred rows,
/// whatever the organization's size).
pub const ORGANIZATION_FUNNEL: &str = funnel!("t.organization_id = $2", "c.organization_id = $2");
/// Every user's funnel (`$2` is null): every count.
pub const FUNNEL: &str = funnel!("$2::uuid is null", "$2::uuid is null");

/// An admin's search of every user by a case-insensitive prefix of their
/// email or name, by name then id. The prefix is matched with `starts_with`
/// (no pattern: `%` and `_` are themselves), and bounded by a range the
/// `text_pattern_ops` indexes of migration 0013 serve. Audited as
/// `read.profile`, the page's people as subjects. Binds: $1 caller, $2 the
/// prefix (null: everyone), $3 the cursor's name, $4 its id, $5 rows (the
/// page plus one), $6 rows shown, $7 request id.
pub const SEARCH_USERS: &str = "with caller as (
        select id, role from shared.callers where id = $1
    ), page as (
        select t.id, t.full_name::text as name, t.email::text as email, t.role::text as role,
               t.organization_id, o.name::text as organization_name, t.tools_completed::bigint as completed,
               t.last_activity_at, t.last_login, lower(t.full_name) as k
        from shared.users t
        left join shared.organizations o on o.id = t.organization_id
        where (select role from caller) = 'admin'
          and ($2::text is null
               or (lower(t.email) ~>=~ lower($2::text) and lower(t.email) ~<~ (lower($2::text) || chr(1114111))
                   and starts_with(lower(t.email), lower($2::text)))
               or (lower(t.full_name) ~>=~ lower($2::text) and lower(t.full_name) ~<~ (lower($2::text) || chr(1114111))
                   and starts_with(lower(t.full_name), lower($2::text))))
          and ($4::uuid is null or (lower(t.full_name), t.id) > ($3::text, $4::uuid))
        order by lower(t.full_name), t.id
        limit $5::bigint
    ), audit as (
        insert into shared.audit_log (actor_id, actor_role, action, subjects, request_id)
        select c.id, c.role, 'read.profile', array(select s.id from page s order by s.k, s.id limit $6::bigint), $7::text
        from caller c where c.role = 'admin'
        returning 1
    )
    select (select role::text from caller) as caller_role, page.id, page.name, page.email, page.role,
           page.organization_id, page.organization_name, page.completed, page.last_activity_at,
           page.last_login, page.k as sort_key
    from (values (1)) as one left join page on true
    order by page.k, page.id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_roster_statement_audits_and_keeps_the_access_rule() {
        for (statements, action) in [
            (ROSTER_FIRST, "'read.roster'"),
            (ROSTER_AFTER, "'read.roster'"),
            (ROSTER_CSV, "'read.roster_csv'"),
        ] {
            for sql in statements.iter().flatten() {
                assert!(sql.contains(action));
                assert!(sql.contains("insert into shared.audit_log"));
                assert!(sql.contains("a.role = 'guru' and a.organization_id is not null"));
            }
        }
        assert!(ROSTER_FIRST[0][0].contains("order by lower(t.full_name) asc, t.id asc"));
        assert!(ROSTER_AFTER[1][1].contains(
            "(coalesce(t.last_activity_at, '-infinity'::timestamptz), t.id) < (cast($11::text as timestamptz), $12::uuid)"
        ));
        assert!(ROSTER_FIRST[2][0].contains("$11::text is null and $12::uuid is null"));
    }
}
