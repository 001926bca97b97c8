-- Purchases from suppliers for REALTIME orders (see persistence/supplier_orders.py).

-- name: insert_order
-- A REALTIME order, paid and waiting for its codes; nothing when the key is taken.
INSERT INTO orders (channel_id, product_id, idempotency_key, input_hash, quantity,
                    unit_price, total, payment, status, buyer, delivery)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'BALANCE', 'FULFILLING', $8::jsonb, $9::jsonb)
ON CONFLICT (channel_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: charge
UPDATE orders
SET status = 'FULFILLING', sale_transaction_id = $2, paid_at = now(), status_reason = NULL,
    unit_price = $3, total = $4, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: insert
INSERT INTO supplier_orders (order_id, supplier_id, ref, sku, quantity, status, leased_until)
VALUES ($1, $2, $3, $4, $5, 'PENDING', now() + make_interval(secs => $6));

-- name: get
SELECT * FROM supplier_orders WHERE order_id = $1;

-- name: lock
SELECT * FROM supplier_orders WHERE order_id = $1 FOR UPDATE;

-- name: again
-- Re-placement (补单): the same ref, paid anew as the next round.
UPDATE supplier_orders
SET status = 'PENDING', round = round + 1, last_error = NULL,
    leased_until = now() + make_interval(secs => $2), updated_at = now()
WHERE order_id = $1
RETURNING *;

-- name: finish
UPDATE supplier_orders
SET status = $2, attempts = attempts + $3, last_error = $4, updated_at = now()
WHERE order_id = $1;

-- name: take_abandoned
-- Unfinished purchases whose process stopped working on them: this process takes them.
UPDATE supplier_orders s
SET leased_until = now() + make_interval(secs => $1), updated_at = now()
FROM (
    SELECT order_id FROM supplier_orders
    WHERE status = 'PENDING' AND leased_until < now()
    ORDER BY leased_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) due
WHERE s.order_id = due.order_id
RETURNING s.order_id;
