-- Price chains: for each channel from the root down to a channel, its default markup and
-- the price its parent set for it for the product. The path's channels are its ancestors
-- (ltree @>), found through the GiST index on channels.path.

-- name: price_path
-- Product $2 along the path $1, root first; no rows when the product does not exist.
SELECT p.cost_price, p.base_price,
       c.id AS channel_id, c.default_markup_percent, cp.price, cp.markup_percent
FROM products p
JOIN channels c ON c.path @> $1::ltree
LEFT JOIN channel_prices cp ON cp.channel_id = c.id AND cp.product_id = p.id
WHERE p.id = $2
ORDER BY nlevel(c.path);

-- name: price_paths
-- As price_path, for each of the products $2 that exists, by product then root first.
SELECT p.id AS product_id, p.cost_price, p.base_price,
       c.id AS channel_id, c.default_markup_percent, cp.price, cp.markup_percent
FROM products p
JOIN channels c ON c.path @> $1::ltree
LEFT JOIN channel_prices cp ON cp.channel_id = c.id AND cp.product_id = p.id
WHERE p.id = ANY ($2::bigint[])
ORDER BY p.id, nlevel(c.path);

-- name: set_price
-- A fixed price ($3) or a markup ($4) for channel $1 and product $2, replacing any.
INSERT INTO channel_prices (channel_id, product_id, price, markup_percent)
VALUES ($1, $2, $3, $4)
ON CONFLICT (channel_id, product_id) DO UPDATE
SET price = EXCLUDED.price,
    markup_percent = EXCLUDED.markup_percent,
    updated_at = clock_timestamp();

-- name: clear_price
DELETE FROM channel_prices WHERE channel_id = $1 AND product_id = $2;

-- name: set_default_markup
UPDATE channels SET default_markup_percent = $2 WHERE id = $1;

-- name: price_page
-- Prices set for channel $1, by product id above $2, of the products the reader at $4
-- sees (null: every product; as in catalog.get_product).
SELECT cp.product_id, cp.price, cp.markup_percent, cp.updated_at
FROM channel_prices cp
JOIN products p ON p.id = cp.product_id
WHERE cp.channel_id = $1 AND cp.product_id > $2
  AND ($4::text IS NULL OR (p.on_shelf AND NOT EXISTS (
      SELECT 1 FROM hidden_products h
      WHERE h.product_id = p.id
        AND h.channel_id = ANY (string_to_array($4::text, '.')::bigint[]))))
ORDER BY cp.product_id
LIMIT $3;
