-- Two times on each user, for who may read their work and for ordering the
-- syncs that move them between organizations.
--
-- organization_joined_at: when the user entered the organization they are in
-- now. A guru reads only work saved since then (shared/src/access.rs), so a
-- new organization's guru does not see what the person did before joining.
-- Null for every user until their organization next changes: their work in
-- their present organization stays visible as before (what was saved in
-- another organization stays hidden, as each submission records where it was
-- saved).
--
-- lms_state_at: the time of the LearnWorlds state the row shows (when
-- LearnWorlds' API was asked about the user, or an event's own time). A sync
-- carrying an older state changes nothing, so an older delivery never undoes
-- a newer one.
--
-- Only an addition: the code one release back runs unchanged on this schema
-- (it neither reads nor sets these columns; a user it moves keeps an older
-- organization_joined_at, so after a roll forward their new guru may read some
-- of what they submitted before that move, as the older code allowed).

ALTER TABLE shared.users
    ADD COLUMN organization_joined_at TIMESTAMP WITH TIME ZONE,
    ADD COLUMN lms_state_at TIMESTAMP WITH TIME ZONE;

GRANT INSERT (organization_joined_at, lms_state_at),
      UPDATE (organization_joined_at, lms_state_at)
    ON shared.users TO fasttrack_runtime;
