-- Merchants that redeem codes, and the channels they are authorised for.

-- name: insert
INSERT INTO merchants (channel_id, name, regions) VALUES ($1, $2, $3)
RETURNING *;

-- name: get
SELECT * FROM merchants WHERE id = $1;

-- name: get_in_subtree
SELECT m.* FROM merchants m JOIN channels c ON c.id = m.channel_id
WHERE m.id = $1 AND c.path <@ $2::ltree;

-- name: page
SELECT m.* FROM merchants m JOIN channels c ON c.id = m.channel_id
WHERE c.path <@ $1::ltree AND m.id > $2
ORDER BY m.id
LIMIT $3;

-- name: clear_channels
DELETE FROM merchant_channels WHERE merchant_id = $1;

-- name: add_channels
INSERT INTO merchant_channels (merchant_id, channel_id)
SELECT $1, unnest($2::bigint[])
ON CONFLICT DO NOTHING;

-- name: channels_of
SELECT merchant_id, channel_id FROM merchant_channels
WHERE merchant_id = ANY($1::bigint[])
ORDER BY merchant_id, channel_id;

-- name: authorises
-- Whether the merchant may redeem a code sold to the channel at $2: it is authorised for
-- that channel or one above it.
SELECT EXISTS (
    SELECT 1 FROM merchant_channels mc JOIN channels c ON c.id = mc.channel_id
    WHERE mc.merchant_id = $1 AND $2::ltree <@ c.path
);
