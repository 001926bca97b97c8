-- Codes bought from a supplier for a REALTIME order, stored like imported ones.

-- name: lock_active_key
SELECT id FROM encryption_keys WHERE active FOR KEY SHARE;

-- name: insert_batch
-- One batch per purchase: its ref is the batch's key, so a purchase is stored once.
INSERT INTO code_batches (pool_id, source, idempotency_key, result)
VALUES ($1, 'SUPPLIER', $2, $3::jsonb)
ON CONFLICT (pool_id, idempotency_key) DO NOTHING
RETURNING id;

-- name: insert_codes
-- Sold at once, under the purchase's ref. A fingerprint stored already (the supplier sent
-- a code this platform holds) is skipped, and the caller refuses the purchase.
INSERT INTO codes (pool_id, batch_id, fingerprint, code_ciphertext, password_ciphertext,
                   key_id, last4, expires_at, status, sold_at, reservation_ref)
SELECT $1, $2, r.fingerprint, r.code_ciphertext, r.password_ciphertext, $3, r.last4,
       r.expires_at, 'sold', now(), $4
FROM unnest($5::bytea[], $6::bytea[], $7::bytea[], $8::text[], $9::timestamptz[])
    WITH ORDINALITY AS r (fingerprint, code_ciphertext, password_ciphertext, last4,
                          expires_at, n)
ORDER BY r.n
ON CONFLICT (fingerprint) DO NOTHING
RETURNING id, fingerprint;

-- name: record_supplied
INSERT INTO code_events (code_id, kind, actor)
SELECT unnest($1::bigint[]), 'SUPPLIED', $2;

-- name: count_sold
UPDATE pools SET sold = sold + $2 WHERE id = $1;
