-- name: by_key
SELECT * FROM orders WHERE channel_id = $1 AND idempotency_key = $2;

-- name: attach_codes
INSERT INTO order_codes (order_id, code_id) SELECT $1, unnest($2::bigint[]);

-- name: record_events
INSERT INTO code_events (code_id, kind, order_id, channel_id, actor)
SELECT unnest($1::bigint[]), $2, $3, $4, $5;

-- name: get_in_subtree
SELECT o.* FROM orders o JOIN channels c ON c.id = o.channel_id
WHERE o.id = $1 AND c.path <@ $2::ltree;

-- name: page
-- Newest first; $3 status and $4 product filter when not null.
SELECT o.* FROM orders o JOIN channels c ON c.id = o.channel_id
WHERE c.path <@ $1::ltree AND o.id < $2
  AND ($3::text IS NULL OR o.status = $3::text)
  AND ($4::bigint IS NULL OR o.product_id = $4::bigint)
ORDER BY o.id DESC
LIMIT $5;

-- name: codes_of
SELECT c.id, c.last4, c.status, c.expires_at
FROM order_codes oc JOIN codes c ON c.id = oc.code_id
WHERE oc.order_id = $1
ORDER BY c.id;

-- name: code_ids_of
SELECT code_id FROM order_codes WHERE order_id = $1 ORDER BY code_id;

-- name: insert_awaiting
-- An EXTERNAL order holding a reservation; nothing when the key is taken.
INSERT INTO orders (channel_id, product_id, idempotency_key, input_hash, quantity,
                    unit_price, total, payment, status, pool_id, buyer,
                    payment_reference, reservation_ref, expires_at, delivery)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'EXTERNAL', 'AWAITING_PAYMENT', $8, $9, $10, $11, $12,
        $13::jsonb)
ON CONFLICT (channel_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: by_payment_reference
SELECT * FROM orders WHERE payment_reference = $1;

-- name: get
SELECT * FROM orders WHERE id = $1;

-- name: lock
SELECT * FROM orders WHERE id = $1 FOR UPDATE;

-- name: channel_path
SELECT path::text FROM channels WHERE id = $1;

-- name: attach_missing_codes
INSERT INTO order_codes (order_id, code_id) SELECT $1, unnest($2::bigint[])
ON CONFLICT (order_id, code_id) DO NOTHING;

-- name: detach_codes
DELETE FROM order_codes WHERE order_id = $1;

-- name: mark_paid
UPDATE orders
SET status = 'PAID', pool_id = $2, sale_transaction_id = $3, paid_at = now(),
    status_reason = NULL, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: set_status
UPDATE orders
SET status = $2, status_reason = $3,
    refund_transaction_id = coalesce($4, refund_transaction_id), updated_at = now()
WHERE id = $1
RETURNING *;

-- name: due_to_expire
-- Unpaid orders, and orders held for review that nobody reviewed in time.
SELECT * FROM orders
WHERE status IN ('AWAITING_PAYMENT', 'REVIEW') AND expires_at <= $1
ORDER BY expires_at
LIMIT $2;

-- name: expire
-- Only an order still waiting: a payment (or a review) may have come meanwhile.
WITH expired AS (
    UPDATE orders
    SET status = 'EXPIRED',
        status_reason = CASE status
            WHEN 'REVIEW' THEN 'Not reviewed before its hold expired.'
            ELSE 'Not paid before the reservation expired.'
        END,
        updated_at = now()
    WHERE id = $1 AND status IN ('AWAITING_PAYMENT', 'REVIEW')
    RETURNING *
), detached AS (
    DELETE FROM order_codes WHERE order_id IN (SELECT id FROM expired)
)
SELECT expired.*, c.path::text AS channel_path
FROM expired JOIN channels c ON c.id = expired.channel_id;

-- name: voided_code_ids
SELECT c.id FROM order_codes oc JOIN codes c ON c.id = oc.code_id
WHERE oc.order_id = $1 AND c.status = 'voided'
ORDER BY c.id;

-- name: sold_under
SELECT count(*) FROM codes WHERE pool_id = $1 AND reservation_ref = $2 AND status = 'sold';

-- name: detach_released
-- Codes about to be sold that an unpaid order still holds on paper: its reservation was
-- returned to stock (by the sweeper) before the expiry pass detached them. Found from the
-- codes' side (see migration 0014): almost always none, and no read of the orders to learn it.
DELETE FROM order_codes oc
WHERE oc.code_id = ANY($1::bigint[])
  AND (SELECT o.status FROM orders o WHERE o.id = oc.order_id)
      IN ('AWAITING_PAYMENT', 'REVIEW', 'EXPIRED', 'CANCELLED');
