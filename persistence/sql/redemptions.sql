-- Redemptions (核销): each use of a code at a merchant.

-- name: find
SELECT * FROM code_redemption_rows WHERE fingerprint = $1;

-- name: find_for_link
-- The code a scanned link redeems: the first of its order's codes with uses left, else
-- its first code (whose refusal then tells why).
SELECT r.* FROM deliveries d
JOIN order_codes oc ON oc.order_id = d.order_id
JOIN code_redemption_rows r ON r.id = oc.code_id
WHERE d.id = $1 AND d.method = 'LINK'
ORDER BY (r.status = 'sold' AND r.uses < r.max_uses) DESC, r.id
LIMIT 1;

-- name: state
SELECT * FROM code_redemption_rows WHERE id = $1;

-- name: by_key
SELECT r.*, c.last4 FROM redemptions r JOIN codes c ON c.id = r.code_id
WHERE r.merchant_id = $1 AND r.idempotency_key = $2;

-- name: use
-- One use of a sold code with uses left; nothing when it has none, or is no longer sold
-- (frozen or voided meanwhile): the row lock orders concurrent uses one after another.
UPDATE codes c
SET uses = c.uses + 1
FROM pools pl JOIN products p ON p.id = pl.product_id
WHERE c.id = $1 AND pl.id = c.pool_id AND c.status = 'sold'
  AND c.uses < coalesce(c.max_uses, p.max_uses)
RETURNING coalesce(c.max_uses, p.max_uses) - c.uses AS uses_left;

-- name: insert
-- Nothing when the merchant used this key before (a retry, or a concurrent twin).
INSERT INTO redemptions (code_id, merchant_id, idempotency_key, actor, region, uses_left)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (merchant_id, idempotency_key) DO NOTHING
RETURNING *, (SELECT last4 FROM codes WHERE id = $1) AS last4;

-- name: record_event
INSERT INTO code_events (code_id, kind, order_id, channel_id, actor, detail)
VALUES ($1, $2, $3, $4, $5, $6::jsonb);

-- name: page
-- Newest first: redemptions by merchants managed in the subtree at $1, or of codes sold
-- there; $4 merchant and $5 code when not null.
SELECT r.*, c.last4
FROM redemptions r
JOIN codes c ON c.id = r.code_id
JOIN merchants m ON m.id = r.merchant_id
JOIN channels mc ON mc.id = m.channel_id
LEFT JOIN order_codes oc ON oc.code_id = r.code_id
LEFT JOIN orders o ON o.id = oc.order_id
LEFT JOIN channels oc_channel ON oc_channel.id = o.channel_id
WHERE (mc.path <@ $1::ltree OR oc_channel.path <@ $1::ltree) AND r.id < $2
  AND ($4::bigint IS NULL OR r.merchant_id = $4::bigint)
  AND ($5::bigint IS NULL OR r.code_id = $5::bigint)
ORDER BY r.id DESC
LIMIT $3;
