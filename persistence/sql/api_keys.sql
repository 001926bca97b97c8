-- name: insert
INSERT INTO api_keys (channel_id, name, role, secret_hash, merchant_id)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, channel_id, name, role, created_at, revoked_at;

-- name: for_authentication
SELECT k.secret_hash, k.role, k.revoked_at, k.channel_id, c.path::text AS channel_path,
       k.merchant_id
FROM api_keys k JOIN channels c ON c.id = k.channel_id
WHERE k.id = $1;

-- name: get_in_subtree
SELECT k.id, k.channel_id, k.name, k.role, k.created_at, k.revoked_at
FROM api_keys k JOIN channels c ON c.id = k.channel_id
WHERE k.id = $1 AND c.path <@ $2::ltree;

-- name: revoke
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1
RETURNING id, channel_id, name, role, created_at, revoked_at;

-- name: page_of_channel
SELECT id, channel_id, name, role, created_at, revoked_at
FROM api_keys
WHERE channel_id = $1 AND id > $2
ORDER BY id
LIMIT $3;

-- name: revoke_named
UPDATE api_keys SET revoked_at = now()
WHERE channel_id = $1 AND name = $2 AND revoked_at IS NULL;
