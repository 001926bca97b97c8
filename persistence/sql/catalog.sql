-- Every product query returns the same columns: the product, its supplier's public fields
-- and its stock summed over its pools (zeros for a product without pools).

-- name: insert_supplier
INSERT INTO suppliers (name, base_url, secret_ciphertext, key_id)
VALUES ($1, $2, $3, $4)
RETURNING id, name, base_url, created_at;

-- name: get_supplier
SELECT id, name, base_url, created_at
FROM suppliers
WHERE id = $1;

-- name: all_suppliers
SELECT id, name, base_url, created_at
FROM suppliers
ORDER BY id;

-- name: get_product
-- $2: the reader's channel path, or null for a reader who sees every product (the
-- platform). A reader with a path sees the product when it is on shelf and no channel
-- from the root down to the reader hides it (the path's labels are the channel ids).
SELECT p.* FROM product_rows p
WHERE p.id = $1
  AND ($2::text IS NULL OR (p.on_shelf AND NOT EXISTS (
      SELECT 1 FROM hidden_products h
      WHERE h.product_id = p.id
        AND h.channel_id = ANY (string_to_array($2::text, '.')::bigint[]))));

-- name: product_page
-- Keyset page by id. $3: the reader's channel path, or null (as in get_product); $4
-- category and $5 on_shelf filter when not null.
SELECT p.* FROM product_rows p
WHERE p.id > $1
  AND ($3::text IS NULL OR (p.on_shelf AND NOT EXISTS (
      SELECT 1 FROM hidden_products h
      WHERE h.product_id = p.id
        AND h.channel_id = ANY (string_to_array($3::text, '.')::bigint[]))))
  AND ($4::text IS NULL OR p.category = $4::text)
  AND ($5::boolean IS NULL OR p.on_shelf = $5::boolean)
ORDER BY p.id
LIMIT $2;

-- name: product_search_page
-- As product_page, with $6 an ILIKE pattern on the name. A block of its own so that the
-- planner can use the trigram index, which a generic "$6 IS NULL OR ..." plan cannot.
SELECT p.* FROM product_rows p
WHERE p.name ILIKE $6::text
  AND p.id > $1
  AND ($3::text IS NULL OR (p.on_shelf AND NOT EXISTS (
      SELECT 1 FROM hidden_products h
      WHERE h.product_id = p.id
        AND h.channel_id = ANY (string_to_array($3::text, '.')::bigint[]))))
  AND ($4::text IS NULL OR p.category = $4::text)
  AND ($5::boolean IS NULL OR p.on_shelf = $5::boolean)
ORDER BY p.id
LIMIT $2;

-- name: insert_product
WITH p AS (
    INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment,
                          supplier_id, supplier_sku, validity_days, max_uses, on_shelf)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    RETURNING *
)
SELECT p.id, p.name, p.category, p.face_value, p.cost_price, p.base_price, p.fulfilment,
       p.supplier_id, p.supplier_sku, p.validity_days, p.max_uses, p.on_shelf,
       p.created_at, p.updated_at,
       s.name AS supplier_name, s.base_url AS supplier_base_url,
       s.created_at AS supplier_created_at,
       0::bigint AS available, 0::bigint AS reserved, 0::bigint AS sold, 0::bigint AS frozen,
       p.redeemable
FROM p
LEFT JOIN suppliers s ON s.id = p.supplier_id;

-- name: lock_product
-- The settable fields of a product, locked until the transaction ends, so concurrent
-- updates apply one after another to the row as the previous one left it.
SELECT name, category, face_value, cost_price, base_price, fulfilment, supplier_id,
       supplier_sku, validity_days, max_uses, on_shelf
FROM products
WHERE id = $1
FOR UPDATE;

-- name: update_product
-- updated_at moves strictly forward, even when two updates fall in one clock tick.
-- Returns the id; the caller reads the product back (an UPDATE's own statement would
-- still see the old row through product_rows).
WITH p AS (
    UPDATE products
    SET name = $2, category = $3, face_value = $4, cost_price = $5, base_price = $6,
        fulfilment = $7, supplier_id = $8, supplier_sku = $9, validity_days = $10,
        max_uses = $11, on_shelf = $12,
        updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond')
    WHERE id = $1
    RETURNING id
)
SELECT id FROM p;

-- name: set_on_shelf
WITH p AS (
    UPDATE products
    SET on_shelf = $2,
        updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond')
    WHERE id = $1
    RETURNING id
)
SELECT id FROM p;

-- name: products_by_ids
-- The products of $1 that the reader at $2 sees (as in get_product), in id order.
SELECT p.* FROM product_rows p
WHERE p.id = ANY ($1::bigint[])
  AND ($2::text IS NULL OR (p.on_shelf AND NOT EXISTS (
      SELECT 1 FROM hidden_products h
      WHERE h.product_id = p.id
        AND h.channel_id = ANY (string_to_array($2::text, '.')::bigint[]))))
ORDER BY p.id;

-- name: visible_product_ids
-- Which of the products $1 the reader at $2 sees (as in get_product).
SELECT p.id
FROM products p
WHERE p.id = ANY ($1::bigint[])
  AND ($2::text IS NULL OR (p.on_shelf AND NOT EXISTS (
      SELECT 1 FROM hidden_products h
      WHERE h.product_id = p.id
        AND h.channel_id = ANY (string_to_array($2::text, '.')::bigint[]))));

-- name: hidden_on_path
-- Whether a channel from the root down to the channel at $2 hides product $1.
SELECT EXISTS (
    SELECT 1 FROM hidden_products
    WHERE product_id = $1
      AND channel_id = ANY (string_to_array($2::text, '.')::bigint[])
);

-- name: stock
SELECT $1::bigint AS product_id,
       coalesce(sum(available), 0)::bigint AS available,
       coalesce(sum(reserved), 0)::bigint AS reserved,
       coalesce(sum(sold), 0)::bigint AS sold,
       coalesce(sum(frozen), 0)::bigint AS frozen
FROM pools
WHERE product_id = $1;

-- name: product_id_by_name
SELECT id FROM products WHERE name = $1 ORDER BY id LIMIT 1;

-- name: supplier_connection
-- What calling a supplier needs, its sealed secret included: for the supplier clients only.
SELECT id, base_url, secret_ciphertext, key_id FROM suppliers WHERE id = $1;

-- name: supplier_id_by_name
SELECT id FROM suppliers WHERE name = $1 ORDER BY id LIMIT 1;

-- name: reconnect_supplier
-- A supplier that moved (the demo's simulator on another port) or changed its secret.
UPDATE suppliers SET base_url = $2, secret_ciphertext = $3, key_id = $4 WHERE id = $1;

-- name: product_id_by_sku
SELECT id FROM products WHERE supplier_id = $1 AND supplier_sku = $2;

-- name: set_redeemable
WITH p AS (
    UPDATE products
    SET redeemable = $2,
        updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond')
    WHERE id = $1
    RETURNING id
)
SELECT id FROM p;
