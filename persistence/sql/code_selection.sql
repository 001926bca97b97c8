-- Which codes a freeze, unfreeze or void takes. Only reads: the pool actors write the
-- states. Long selections are walked in keyset pages, never loaded whole.

-- name: in_scope
-- Of the codes $1, those that exist and, with $2 given, were sold to an order of the
-- subtree at $2 (the codes a channel may change).
SELECT c.id FROM codes c
WHERE c.id = ANY($1::bigint[])
  AND ($2::ltree IS NULL OR EXISTS (
      SELECT 1 FROM order_codes oc
      JOIN orders o ON o.id = oc.order_id
      JOIN channels ch ON ch.id = o.channel_id
      WHERE oc.code_id = c.id AND ch.path <@ $2::ltree));

-- name: of_order
SELECT code_id AS id FROM order_codes WHERE order_id = $1;

-- name: pool_page
SELECT id FROM codes
WHERE pool_id = $1 AND id > $2
ORDER BY id
LIMIT $3;

-- name: batch_pool
SELECT pool_id FROM code_batches WHERE id = $1;

-- name: batch_page
-- The pool's index in id order; the batch's codes all lie in its pool.
SELECT id FROM codes
WHERE pool_id = $1 AND batch_id = $2 AND id > $3
ORDER BY id
LIMIT $4;

-- name: channel_page
-- The codes of the next $3 orders, in id order after order $2, placed by the channels
-- of the subtree at $1. Paged by order: an order holds at most a few hundred codes, and
-- the orders of a subtree are found through their channel's index, not by walking codes.
WITH page AS (
    SELECT o.id FROM orders o
    WHERE o.channel_id IN (SELECT id FROM channels WHERE path <@ $1::ltree) AND o.id > $2
    ORDER BY o.id
    LIMIT $3
)
SELECT (SELECT max(id) FROM page) AS last_order,
       (SELECT coalesce(array_agg(oc.code_id), '{}') FROM order_codes oc
        WHERE oc.order_id IN (SELECT id FROM page)) AS ids;

-- name: classify
-- Of the codes $1, those in a state the change moves ($2) or leaves as it is ($3), with
-- their pool and whether to move them. $4: only codes with uses left. $5 (an unfreeze by
-- a channel): a code moves only if its last freeze was made from the subtree at $5, so
-- that a freeze from above (the platform, a parent, the risk rules) holds.
SELECT c.id, c.pool_id,
       c.status = ANY($2::text[]) AND ($5::ltree IS NULL OR EXISTS (
           SELECT 1 FROM channels ch
           WHERE ch.path <@ $5::ltree
             AND ch.id::text = (SELECT e.detail ->> 'by_channel_id' FROM code_events e
                                WHERE e.code_id = c.id AND e.kind = 'FROZEN'
                                ORDER BY e.id DESC
                                LIMIT 1))) AS movable
FROM codes c
JOIN pools p ON p.id = c.pool_id
JOIN products pr ON pr.id = p.product_id
WHERE c.id = ANY($1::bigint[])
  AND c.status = ANY($2::text[] || $3::text[])
  AND (NOT $4::boolean OR c.uses < coalesce(c.max_uses, pr.max_uses))
ORDER BY c.pool_id, c.id;
