-- Every statement here is run by a pool's actor, the only writer of its codes' states.
-- Each locks the pool row with the epoch the actor holds ("fence"): an actor that has
-- been replaced matches no row and so changes nothing.

-- name: claim
UPDATE pools SET epoch = epoch + 1
WHERE id = $1
RETURNING epoch, product_id, available, reserved, sold, frozen, voided;

-- name: window
SELECT id FROM codes
WHERE pool_id = $1 AND status = 'available' AND id > $2
ORDER BY id
LIMIT $3;

-- name: reserve
WITH fence AS (
    SELECT id FROM pools WHERE id = $1 AND epoch = $2 FOR UPDATE
), moved AS (
    UPDATE codes c
    SET status = 'reserved', reservation_ref = u.ref, reserved_until = u.until
    FROM unnest($3::bigint[], $4::text[], $5::timestamptz[]) AS u (id, ref, until), fence
    -- The ANY keeps the scan of codes to these ids whatever the planner thinks of the
    -- pool's size (fresh imports have no statistics yet): no walk of the whole pool.
    WHERE c.id = u.id AND c.id = ANY($3::bigint[])
      AND c.pool_id = fence.id AND c.status = 'available'
    RETURNING c.id
), counted AS (
    UPDATE pools
    SET available = available - (SELECT count(*) FROM moved),
        reserved = reserved + (SELECT count(*) FROM moved)
    WHERE id = $1 AND epoch = $2
    RETURNING available, reserved, sold, frozen, voided
)
SELECT (SELECT coalesce(array_agg(id), '{}') FROM moved) AS ids, counted.* FROM counted;

-- name: reserved_for
SELECT reservation_ref AS ref, array_agg(id ORDER BY id) AS ids, min(reserved_until) AS until
FROM codes
WHERE pool_id = $1 AND reservation_ref = ANY($2::text[]) AND status IN ('reserved', 'sold')
GROUP BY reservation_ref;

-- name: commit
WITH fence AS (
    SELECT id FROM pools WHERE id = $1 AND epoch = $2 FOR UPDATE
), moved AS (
    UPDATE codes c
    SET status = 'sold', sold_at = now(), reserved_until = NULL
    FROM fence
    WHERE c.pool_id = fence.id AND c.reservation_ref = $3 AND c.status = 'reserved'
    RETURNING c.id
), counted AS (
    UPDATE pools
    SET reserved = reserved - (SELECT count(*) FROM moved),
        sold = sold + (SELECT count(*) FROM moved)
    WHERE id = $1 AND epoch = $2
    RETURNING available, reserved, sold, frozen, voided
)
SELECT (SELECT coalesce(array_agg(id), '{}') FROM moved) AS ids,
       (SELECT coalesce(array_agg(id), '{}') FROM codes
        WHERE pool_id = $1 AND reservation_ref = $3 AND status = 'sold') AS sold_before,
       counted.*
FROM counted;

-- name: release
-- Reservations named by $3, or with $3 null every reservation expired by $4.
WITH fence AS (
    SELECT id FROM pools WHERE id = $1 AND epoch = $2 FOR UPDATE
), moved AS (
    UPDATE codes c
    SET status = 'available', reservation_ref = NULL, reserved_until = NULL
    FROM fence
    WHERE c.pool_id = fence.id AND c.status = 'reserved'
      AND (c.reservation_ref = $3 OR ($3 IS NULL AND c.reserved_until <= $4))
    RETURNING c.id
), counted AS (
    UPDATE pools
    SET available = available + (SELECT count(*) FROM moved),
        reserved = reserved - (SELECT count(*) FROM moved)
    WHERE id = $1 AND epoch = $2
    RETURNING available, reserved, sold, frozen, voided
)
SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM moved) AS ids, counted.*
FROM counted;

-- name: move
-- Codes named by id from any of the states $4 to $5 (frozen remembers where from;
-- unfreezing, $5 null, goes back there). Reserved codes never move here: their
-- reservation is committed or released first. With $6 given, each moved code gets an
-- event of that kind (by $7, with $8), naming the order it was sold to, in this statement:
-- a move is never recorded without its event nor the other way round.
WITH fence AS (
    SELECT id FROM pools WHERE id = $1 AND epoch = $2 FOR UPDATE
), target AS (
    SELECT c.id, c.status, c.frozen_from
    FROM codes c, fence
    WHERE c.pool_id = fence.id AND c.id = ANY($3::bigint[]) AND c.status = ANY($4::text[])
    FOR UPDATE OF c
), moved AS (
    UPDATE codes c
    SET status = coalesce($5::text, t.frozen_from),
        frozen_from = CASE WHEN $5::text = 'frozen' THEN t.status END
    FROM target t
    WHERE c.id = t.id
    RETURNING c.id, t.status AS was, c.status AS now
), counted AS (
    UPDATE pools
    SET available = available + (SELECT count(*) FILTER (WHERE now = 'available')
                                        - count(*) FILTER (WHERE was = 'available') FROM moved),
        sold = sold + (SELECT count(*) FILTER (WHERE now = 'sold')
                              - count(*) FILTER (WHERE was = 'sold') FROM moved),
        frozen = frozen + (SELECT count(*) FILTER (WHERE now = 'frozen')
                                  - count(*) FILTER (WHERE was = 'frozen') FROM moved),
        voided = voided + (SELECT count(*) FILTER (WHERE now = 'voided') FROM moved)
    WHERE id = $1 AND epoch = $2
    RETURNING available, reserved, sold, frozen, voided
), recorded AS (
    INSERT INTO code_events (code_id, kind, order_id, channel_id, actor, detail)
    SELECT m.id, $6::text, oc.order_id, o.channel_id, $7::text, $8::jsonb
    FROM moved m
    LEFT JOIN order_codes oc ON oc.code_id = m.id
    LEFT JOIN orders o ON o.id = oc.order_id
    WHERE $6::text IS NOT NULL
)
SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM moved) AS ids,
       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM moved
        WHERE now = 'available') AS now_available,
       counted.*
FROM counted;

-- name: counts
SELECT available, reserved, sold, frozen, voided FROM pools WHERE id = $1;

-- name: expired_pools
SELECT DISTINCT pool_id FROM codes
WHERE status = 'reserved' AND reserved_until <= $1
LIMIT $2;

-- name: product_stock
SELECT p.id AS product_id, p.on_shelf,
       coalesce(sum(pl.available), 0)::bigint AS available,
       coalesce(sum(pl.reserved), 0)::bigint AS reserved,
       coalesce(sum(pl.sold), 0)::bigint AS sold,
       coalesce(sum(pl.frozen), 0)::bigint AS frozen
FROM products p LEFT JOIN pools pl ON pl.product_id = p.id
WHERE p.id = $1
GROUP BY p.id;

-- name: fence
SELECT id FROM pools WHERE id = $1 AND epoch = $2 FOR UPDATE;

-- name: sell
-- Codes straight from available to sold, each under its sale's reference (see sell_codes,
-- migration 0012).
SELECT * FROM sell_codes($1, $2::bigint[], $3::text[]);

-- name: epoch
SELECT epoch FROM pools WHERE id = $1;
