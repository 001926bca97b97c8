-- name: product_supplier
SELECT supplier_id FROM products WHERE id = $1;
