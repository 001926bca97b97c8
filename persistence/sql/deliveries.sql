-- name: enqueue
-- See queue_deliveries (migration 0012): paid orders queue theirs in the same function.
SELECT queue_deliveries($1::bigint[], $2::bigint[], $3::text[], $4::text[]);

-- name: claim
-- Due rows, oldest due first, claimed for worker $2 for $3 seconds; rows another worker
-- is claiming right now are skipped. With what sending them needs.
WITH due AS (
    SELECT id FROM deliveries
    WHERE status = 'PENDING' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries d
    SET status = 'SENDING', attempts = d.attempts + 1, leased_by = $2,
        leased_until = now() + make_interval(secs => $3), updated_at = now()
    FROM due
    WHERE d.id = due.id
    RETURNING d.*
)
SELECT c.id, c.order_id, c.channel_id, c.method, c.target, c.attempts, c.created_at,
       c.event, c.payload, o.status AS order_status, o.product_id, o.paid_at, p.name AS product_name,
       e.id AS endpoint_id, e.kind AS endpoint_kind, e.secret_ciphertext, e.key_id,
       e.disabled_at AS endpoint_disabled_at
FROM claimed c
JOIN orders o ON o.id = c.order_id
JOIN products p ON p.id = o.product_id
LEFT JOIN webhook_endpoints e ON e.id = c.endpoint_id
ORDER BY c.id;

-- name: release_abandoned
-- Claims whose worker is gone (its advisory lock (class $1, worker id) is no longer held
-- in this database: the process died) or overran its lease: due again at once, or DEAD
-- when that was the last attempt allowed ($2).
UPDATE deliveries d
SET status = CASE WHEN d.attempts >= $2 THEN 'DEAD' ELSE 'PENDING' END,
    last_error = 'attempt interrupted: its worker stopped before recording the outcome',
    next_attempt_at = now(), leased_by = NULL, leased_until = NULL, updated_at = now()
WHERE d.status = 'SENDING'
  AND (d.leased_until <= now() OR NOT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = $1::integer::oid AND l.objid = d.leased_by::oid))
RETURNING d.id;

-- name: try_worker_lock
SELECT pg_try_advisory_lock($1::integer, $2::integer);

-- name: delivered
-- Only while the claim is still this attempt's: a claim released meanwhile is another's.
UPDATE deliveries
SET status = 'DELIVERED', delivered_at = now(), leased_by = NULL, leased_until = NULL,
    updated_at = now()
WHERE id = $1 AND status = 'SENDING' AND leased_by = $2 AND attempts = $3
RETURNING id;

-- name: retry
UPDATE deliveries
SET status = 'PENDING', last_error = $4, next_attempt_at = now() + make_interval(secs => $5),
    leased_by = NULL, leased_until = NULL, updated_at = now()
WHERE id = $1 AND status = 'SENDING' AND leased_by = $2 AND attempts = $3
RETURNING id;

-- name: dead
UPDATE deliveries
SET status = 'DEAD', last_error = $4, leased_by = NULL, leased_until = NULL, updated_at = now()
WHERE id = $1 AND status = 'SENDING' AND leased_by = $2 AND attempts = $3
RETURNING id;

-- name: of_order
SELECT * FROM deliveries WHERE order_id = $1 ORDER BY id;

-- name: view_link
-- Count one view of a LINK whose order is still PAID, within its lifetime ($3 seconds) and
-- view limit ($2); nothing otherwise.
UPDATE deliveries d
SET link_views = d.link_views + 1, updated_at = now()
FROM orders o, products p
WHERE d.id = $1 AND d.method = 'LINK' AND d.link_views < $2
  AND d.created_at + make_interval(secs => $3) > now()
  AND o.id = d.order_id AND o.status = 'PAID' AND p.id = o.product_id
RETURNING d.order_id, d.channel_id, d.link_views, d.created_at, p.name AS product_name;

-- name: link
SELECT d.link_views, d.created_at, o.status AS order_status
FROM deliveries d JOIN orders o ON o.id = d.order_id
WHERE d.id = $1 AND d.method = 'LINK';

-- name: notify
-- An event about an order's code ($2: its kind, $3: which code) to the webhook endpoints
-- of the channels $4 subscribed to it, with its message $5.
INSERT INTO deliveries (order_id, channel_id, method, endpoint_id, status, event, event_key,
                        payload)
SELECT $1, e.channel_id, 'WEBHOOK', e.id, 'PENDING', $2, $3, $5::jsonb
FROM webhook_endpoints e
WHERE e.channel_id = ANY($4::bigint[]) AND e.disabled_at IS NULL AND $2 = ANY (e.events)
ON CONFLICT DO NOTHING;
