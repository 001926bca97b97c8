-- name: product_exists
SELECT EXISTS (SELECT 1 FROM products WHERE id = $1);

-- name: insert
-- Nothing is inserted (and no row returned) when the product does not exist.
INSERT INTO pools (product_id, name)
SELECT id, $2 FROM products WHERE id = $1
RETURNING id, product_id, name, available, reserved, sold, frozen, voided, created_at;

-- name: get
SELECT id, product_id, name, available, reserved, sold, frozen, voided, created_at
FROM pools
WHERE id = $1;

-- name: by_product
SELECT id, product_id, name, available, reserved, sold, frozen, voided, created_at
FROM pools
WHERE product_id = $1
ORDER BY id;

-- name: add_available
-- Relative, never absolute: the pool's actor changes the counters at the same time.
UPDATE pools SET available = available + $2 WHERE id = $1;
