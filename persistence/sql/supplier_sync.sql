-- Supplier catalog sync: the supplier's products as the sync sees them, and its writes.

-- name: clock
-- The time a catalog read starts, on the database's clock, which every process shares.
SELECT clock_timestamp();

-- name: lock_supplier
-- Syncs of one supplier, from any process, apply one after another. FOR NO KEY UPDATE
-- leaves inserting products of the supplier (the foreign key takes KEY SHARE) unblocked.
SELECT synced_at FROM suppliers WHERE id = $1 FOR NO KEY UPDATE;

-- name: lock_products
-- The supplier's products with a SKU, locked so that an updateProduct running meanwhile
-- applies before or after the sync, never half way.
SELECT id, supplier_sku AS sku, fulfilment = 'REALTIME' AS realtime, name, face_value,
       cost_price, base_price, on_shelf, delisted_at IS NOT NULL AS delisted
FROM products
WHERE supplier_id = $1 AND supplier_sku IS NOT NULL
ORDER BY id
FOR UPDATE;

-- name: insert_products
-- New REALTIME products of supplier $1, off shelf, in the catalog's order. A product
-- with the same SKU made meanwhile (createProduct) wins; only the rows made are returned.
INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment,
                      supplier_id, supplier_sku, on_shelf)
SELECT n.name, n.category, n.face_value, n.cost_price, n.base_price, 'REALTIME', $1, n.sku,
       false
FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[], $7::numeric[])
     WITH ORDINALITY AS n (sku, name, category, face_value, cost_price, base_price, ord)
ORDER BY n.ord
ON CONFLICT (supplier_id, supplier_sku) DO NOTHING
RETURNING id;

-- name: update_products
-- Each product's fields after the sync; a product delisted keeps the time it was first
-- found gone ($1 for those found gone now), a product listed again loses it.
UPDATE products p
SET name = c.name, face_value = c.face_value, cost_price = c.cost_price,
    base_price = c.base_price, on_shelf = c.on_shelf,
    delisted_at = CASE WHEN c.delisted THEN coalesce(p.delisted_at, $1) END,
    updated_at = greatest(clock_timestamp(), p.updated_at + interval '1 microsecond')
FROM unnest($2::bigint[], $3::text[], $4::numeric[], $5::numeric[], $6::numeric[],
            $7::boolean[], $8::boolean[])
     AS c (id, name, face_value, cost_price, base_price, on_shelf, delisted)
WHERE p.id = c.id;

-- name: mark_synced
UPDATE suppliers SET synced_at = $2 WHERE id = $1
RETURNING id, name, base_url, created_at;

-- name: supplier_ids
SELECT id FROM suppliers ORDER BY id;

-- name: delisted_at
-- For the Product.delistedAt field, batched over one request's products.
SELECT id, delisted_at FROM products WHERE id = ANY ($1::bigint[]);

-- name: synced_at
-- For the Supplier.syncedAt field, batched over one request's suppliers.
SELECT id, synced_at FROM suppliers WHERE id = ANY ($1::bigint[]);
