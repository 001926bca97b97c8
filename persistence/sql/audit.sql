-- name: try_lock
-- One chainer at a time across processes; the others skip their pass.
SELECT pg_try_advisory_xact_lock($1);

-- name: state
-- The horizon, and whether the candidate has settled: no transaction that began before it
-- was seen is still writing, that is, has written (it has an xid) or is in a statement (it
-- may have taken an event id and not written the row yet). Read-only transactions add no
-- events. Asked before the search, so that the search sees what those transactions wrote.
SELECT h.horizon,
       h.candidate > h.horizon AND NOT EXISTS (
           SELECT 1 FROM pg_stat_activity a
           WHERE a.datname = current_database()
             AND a.backend_type = 'client backend'
             AND a.pid <> pg_backend_pid()
             AND a.xact_start < h.candidate_at
             AND (a.backend_xid IS NOT NULL OR a.state = 'active')
       ) AS settled
FROM audit_chainer h;

-- name: promote
-- To the candidate, or to $1 when the search that chained what the candidate waited for
-- was cut short there (null: it was not).
UPDATE audit_chainer SET horizon = least(candidate, $1)
WHERE least(candidate, $1) > horizon;

-- name: propose
-- Only when no candidate waits: a new one every pass could keep the horizon from ever
-- moving while transactions overlap.
UPDATE audit_chainer SET candidate = $1, candidate_at = $2
WHERE candidate <= horizon AND $1 > horizon;

-- name: head
SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1;

-- name: unchained
-- Up to $2 events above $1 without an entry, in id order, beside the highest event id
-- this statement's snapshot holds and a time taken after that snapshot (one statement,
-- one snapshot). Always one row at least; no events: the event columns are null. The
-- chain is searched above $1 too: otherwise a generic plan (or a fresh table's missing
-- statistics) walks every entry ever chained, twice a second (tests/integration/
-- test_audit_reads.py).
SELECT seen.max_id, seen.at, e.*
FROM (SELECT max(id) AS max_id, clock_timestamp() AS at FROM code_events) seen
LEFT JOIN LATERAL (
    SELECT e.id, e.code_id, e.kind, e.order_id, e.channel_id, e.actor, e.created_at,
           e.detail::text AS detail
    FROM code_events e
    WHERE e.id > $1
      AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id AND c.event_id > $1)
    ORDER BY e.id
    LIMIT $2
) e ON true
ORDER BY e.id;

-- name: append
INSERT INTO audit_chain (seq, event_id, prev_hash, hash)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]);

-- name: entries
-- A page of the walk: entries after seq $1 up to seq $2, each with its event as it is
-- now (null columns when the event is gone).
SELECT c.seq, c.event_id, c.prev_hash, c.hash, e.id, e.code_id, e.kind, e.order_id,
       e.channel_id, e.actor, e.created_at, e.detail::text AS detail
FROM audit_chain c
LEFT JOIN code_events e ON e.id = c.event_id
WHERE c.seq > $1 AND c.seq <= $2
ORDER BY c.seq
LIMIT $3;

-- name: unchained_summary
-- Events with no entry: how many, and the first of those older than $1 (an interval).
SELECT count(*) AS unchained,
       min(e.id) FILTER (WHERE e.created_at < now() - $1::interval) AS first_stale
FROM code_events e
WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id);

-- name: event_code
SELECT code_id FROM code_events WHERE id = $1;

-- name: code
-- A code as a trace shows it: to the platform any code ($2 null), to another channel only
-- a code of an order of its subtree ($2 its path).
SELECT c.id, c.last4, c.status, c.expires_at
FROM codes c
WHERE c.id = $1
  AND ($2::ltree IS NULL OR EXISTS (
      SELECT 1 FROM order_codes oc
      JOIN orders o ON o.id = oc.order_id
      JOIN channels ch ON ch.id = o.channel_id
      WHERE oc.code_id = c.id AND ch.path <@ $2::ltree));

-- name: trace
-- The code's events in id order, and whether each is chained. Another channel ($2 its
-- path) sees no event of a channel or an order outside its subtree (another channel's
-- reservation that lapsed, say).
SELECT e.id, e.code_id, e.kind, e.order_id, e.channel_id, e.actor, e.created_at,
       e.detail::text AS detail, c.seq IS NOT NULL AS chained
FROM code_events e
LEFT JOIN audit_chain c ON c.event_id = e.id
LEFT JOIN channels ech ON ech.id = e.channel_id
LEFT JOIN orders o ON o.id = e.order_id
LEFT JOIN channels och ON och.id = o.channel_id
WHERE e.code_id = $1
  AND ($2::ltree IS NULL OR (
      (e.channel_id IS NULL OR ech.path <@ $2::ltree)
      AND (e.order_id IS NULL OR och.path <@ $2::ltree)))
ORDER BY e.id;

-- name: orders
SELECT * FROM orders WHERE id = ANY($1::bigint[]);

-- name: channels
SELECT * FROM channels WHERE id = ANY($1::bigint[]);

-- name: merchants
SELECT id, name FROM merchants WHERE id = ANY($1::bigint[]);
