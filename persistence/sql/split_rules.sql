-- name: upsert_for_product
INSERT INTO split_rules (product_id, kind, supplier_percent, platform_percent, agent_percents)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (product_id) DO UPDATE
SET kind = EXCLUDED.kind, supplier_percent = EXCLUDED.supplier_percent,
    platform_percent = EXCLUDED.platform_percent, agent_percents = EXCLUDED.agent_percents,
    updated_at = now()
RETURNING *;

-- name: upsert_for_channel
INSERT INTO split_rules (channel_id, kind, supplier_percent, platform_percent, agent_percents)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (channel_id) DO UPDATE
SET kind = EXCLUDED.kind, supplier_percent = EXCLUDED.supplier_percent,
    platform_percent = EXCLUDED.platform_percent, agent_percents = EXCLUDED.agent_percents,
    updated_at = now()
RETURNING *;

-- name: delete_for_product
DELETE FROM split_rules WHERE product_id = $1 RETURNING *;

-- name: delete_for_channel
DELETE FROM split_rules WHERE channel_id = $1 RETURNING *;

-- name: all
SELECT * FROM split_rules ORDER BY id;

-- name: for_sale
-- The product's rule, else the rule of the nearest channel on the buyer's path.
SELECT r.*
FROM split_rules r
LEFT JOIN channels c ON c.id = r.channel_id
WHERE r.product_id = $1 OR c.path @> $2::ltree
ORDER BY r.product_id IS NULL, nlevel(c.path) DESC
LIMIT 1;
