-- name: insert_rule
INSERT INTO risk_rules (scope, max_attempts, window_seconds, action, created_by, disabled_at)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::boolean THEN now() END)
RETURNING *;

-- name: update_rule
-- Null arguments leave their column; $6 null leaves the rule enabled or disabled as it is.
UPDATE risk_rules
SET scope = coalesce($2, scope),
    max_attempts = coalesce($3, max_attempts),
    window_seconds = coalesce($4, window_seconds),
    action = coalesce($5, action),
    disabled_at = CASE
        WHEN $6::boolean IS NULL THEN disabled_at
        WHEN $6::boolean THEN coalesce(disabled_at, now())
    END,
    updated_at = now()
WHERE id = $1
RETURNING *;

-- name: get_rule
SELECT * FROM risk_rules WHERE id = $1;

-- name: rules
SELECT * FROM risk_rules ORDER BY id;

-- name: active_rules
SELECT * FROM risk_rules WHERE disabled_at IS NULL ORDER BY id;

-- name: block
-- Nothing when the subject is blocked already (the caller reads that block).
INSERT INTO blocked_subjects (kind, value, reason, created_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, value) WHERE unblocked_at IS NULL DO NOTHING
RETURNING *;

-- name: active_block
SELECT * FROM blocked_subjects WHERE kind = $1 AND value = $2 AND unblocked_at IS NULL;

-- name: unblock
UPDATE blocked_subjects SET unblocked_at = now(), unblocked_by = $3
WHERE kind = $1 AND value = $2 AND unblocked_at IS NULL
RETURNING *;

-- name: latest_block
SELECT * FROM blocked_subjects WHERE kind = $1 AND value = $2 ORDER BY id DESC LIMIT 1;

-- name: active_blocks
SELECT * FROM blocked_subjects WHERE unblocked_at IS NULL ORDER BY id;

-- name: blocks_page
-- Newest first; $3 true: only blocks in force.
SELECT * FROM blocked_subjects
WHERE id < $1 AND (NOT $3::boolean OR unblocked_at IS NULL)
ORDER BY id DESC
LIMIT $2;

-- name: insert_event
INSERT INTO risk_events (subject_kind, subject_value, rule_id, decision, reason, channel_id,
                         product_id, order_id, context)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
RETURNING id;

-- name: attach_order
UPDATE risk_events SET order_id = $2 WHERE id = $1 AND order_id IS NULL;

-- name: held_event
-- The decision that held an order for review.
SELECT * FROM risk_events WHERE order_id = $1 AND decision = 'REVIEW' ORDER BY id LIMIT 1;

-- name: events_page
-- Events of orders of the subtree at $1, newest first; filters apply when not null.
SELECT e.* FROM risk_events e JOIN channels c ON c.id = e.channel_id
WHERE c.path <@ $1::ltree AND e.id < $2
  AND ($3::text IS NULL OR e.decision = $3::text)
  AND ($4::text IS NULL OR e.subject_kind = $4::text)
  AND ($5::text IS NULL OR e.subject_value = $5::text)
  AND ($6::bigint IS NULL OR e.order_id = $6::bigint)
ORDER BY e.id DESC
LIMIT $7;

-- name: insert_review_order
-- An order held for review, holding its reservation (none for codes issued at payment);
-- nothing when the key is taken.
INSERT INTO orders (channel_id, product_id, idempotency_key, input_hash, quantity,
                    unit_price, total, payment, status, pool_id, buyer, reservation_ref,
                    expires_at, status_reason, delivery)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'BALANCE', 'REVIEW', $8, $9::jsonb, $10, $11, $12,
        $13::jsonb)
ON CONFLICT (channel_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: sold_under
-- Codes committed under a reservation (by an approval that could not be paid).
SELECT id FROM codes
WHERE pool_id = $1 AND reservation_ref = $2 AND status = 'sold'
ORDER BY id;
