-- What a channel sets for the channels below it: hidden products and restrictions.

-- name: hide_products
-- Hides products $2 for channel $1 (and so for its subtree); hiding twice is harmless.
INSERT INTO hidden_products (channel_id, product_id)
SELECT $1, unnest($2::bigint[])
ON CONFLICT (channel_id, product_id) DO NOTHING;

-- name: show_products
-- Removes channel $1's own hiding of products $2. A channel above may still hide them.
DELETE FROM hidden_products WHERE channel_id = $1 AND product_id = ANY ($2::bigint[]);

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
