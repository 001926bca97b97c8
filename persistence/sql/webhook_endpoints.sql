-- name: insert
-- Nothing when the channel has $7 active endpoints already.
INSERT INTO webhook_endpoints (channel_id, kind, display_url, events, secret_ciphertext, key_id)
SELECT $1, $2, $3, $4::text[], $5, $6
WHERE (SELECT count(*) FROM webhook_endpoints
       WHERE channel_id = $1 AND disabled_at IS NULL) < $7
RETURNING *;

-- name: of_channel
SELECT * FROM webhook_endpoints WHERE channel_id = $1 ORDER BY id;

-- name: get_in_subtree
SELECT e.* FROM webhook_endpoints e JOIN channels c ON c.id = e.channel_id
WHERE e.id = $1 AND c.path <@ $2::ltree;

-- name: disable
-- The first reason stays: disabling twice changes nothing.
UPDATE webhook_endpoints
SET disabled_at = coalesce(disabled_at, now()), disabled_reason = coalesce(disabled_reason, $2)
WHERE id = $1
RETURNING *;
