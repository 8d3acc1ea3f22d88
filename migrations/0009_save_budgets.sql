-- What one participant can make the database store and write.
--
-- save_budgets: each user's token bucket for saves (PUT /tools/{slug}/submission).
-- A save costs one token plus one per 8 KiB of body; the bucket refills at a
-- steady rate up to its burst (SAVE_BURST, SAVE_REFILL_PER_MINUTE). It is read
-- and spent in the save's first statement, under the user's row lock. A row
-- idle for an hour is full again and the recompute deletes it.
CREATE TABLE shared.save_budgets (
    user_id UUID PRIMARY KEY REFERENCES shared.users(id) ON DELETE CASCADE,
    tokens DOUBLE PRECISION NOT NULL,
    refilled_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX idx_save_budgets_refilled_at ON shared.save_budgets (refilled_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON shared.save_budgets TO fasttrack_runtime;

-- A user's Idempotency-Keys by age: a save that claims a key forgets the
-- user's oldest beyond the most recent hundred.
CREATE INDEX idx_idempotency_keys_user_created ON shared.idempotency_keys (user_id, created_at);
