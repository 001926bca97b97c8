-- A product as the API reads it: its row, its supplier's public fields and its stock
-- summed over its pools (zeros for a product without pools). One definition for every
-- query that lists or shows products.
CREATE VIEW product_rows AS
SELECT p.id, p.name, p.category, p.face_value, p.cost_price, p.base_price, p.fulfilment,
       p.supplier_id, p.supplier_sku, p.validity_days, p.max_uses, p.on_shelf,
       p.created_at, p.updated_at,
       s.name AS supplier_name, s.base_url AS supplier_base_url,
       s.created_at AS supplier_created_at,
       st.available, st.reserved, st.sold, st.frozen
FROM products p
LEFT JOIN suppliers s ON s.id = p.supplier_id
CROSS JOIN LATERAL (
    SELECT coalesce(sum(available), 0)::bigint AS available,
           coalesce(sum(reserved), 0)::bigint AS reserved,
           coalesce(sum(sold), 0)::bigint AS sold,
           coalesce(sum(frozen), 0)::bigint AS frozen
    FROM pools WHERE pools.product_id = p.id
) st;
