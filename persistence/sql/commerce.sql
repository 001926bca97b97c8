-- What a channel sets for the channels below it: hidden products and restrictions.

-- name: hide_products
-- Channel $3 hides products $2 for channel $1 (and so for its subtree); twice is harmless.
INSERT INTO hidden_products (channel_id, product_id, hidden_by)
SELECT $1, unnest($2::bigint[]), $3
ON CONFLICT DO NOTHING;

-- name: show_products
-- Undoes the hiding of products $2 for channel $1 done by the channel at $3 or by channels
-- below it; what a channel above hid stays hidden.
DELETE FROM hidden_products h
USING channels by_channel
WHERE h.channel_id = $1 AND h.product_id = ANY ($2::bigint[])
  AND by_channel.id = h.hidden_by AND by_channel.path <@ $3::ltree;

-- name: set_restrictions
UPDATE channels SET regions = $2, customer_groups = $3
WHERE id = $1
RETURNING id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
          default_markup_percent;

-- name: path_restrictions
-- The regions and customer groups of each channel from the root down to the one at $1.
SELECT regions, customer_groups
FROM channels
WHERE path @> $1::ltree
ORDER BY nlevel(path);
