-- name: insert
INSERT INTO users (channel_id, email, password_hash, role, merchant_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT ((lower(email))) DO NOTHING
RETURNING id, channel_id, email, role, created_at;

-- name: for_login
SELECT id, password_hash
FROM users
WHERE lower(email) = lower($1) AND disabled_at IS NULL;

-- name: principal
SELECT u.id, u.role, u.channel_id, c.path::text AS channel_path, u.merchant_id
FROM users u JOIN channels c ON c.id = u.channel_id
WHERE u.id = $1 AND u.disabled_at IS NULL;

-- name: get_in_subtree
SELECT u.id, u.channel_id, u.email, u.role, u.created_at
FROM users u JOIN channels c ON c.id = u.channel_id
WHERE u.id = $1 AND c.path <@ $2::ltree;

-- name: page_of_channel
SELECT id, channel_id, email, role, created_at
FROM users
WHERE channel_id = $1 AND id > $2
ORDER BY id
LIMIT $3;

-- name: set_password
UPDATE users SET password_hash = $2 WHERE id = $1;
