-- name: claim_batch
-- Claims an idempotency key: a concurrent claim of the same key waits here for this
-- transaction's end, then gets no row and reads the stored result.
INSERT INTO code_batches (pool_id, source, idempotency_key)
VALUES ($1, $2, $3)
ON CONFLICT (pool_id, idempotency_key) DO NOTHING
RETURNING id;

-- name: batch_by_key
SELECT id, input_hash, result::text AS result
FROM code_batches
WHERE pool_id = $1 AND idempotency_key = $2;

-- name: finish_batch
UPDATE code_batches SET input_hash = $2, result = $3::jsonb WHERE id = $1;

-- name: analyze_codes
ANALYZE codes;

-- name: lock_active_key
-- The active data key, locked against deletion until this transaction ends, so a key
-- rotation cannot delete the key this import encrypts with.
SELECT id FROM encryption_keys WHERE active FOR KEY SHARE;

-- name: insert_codes
-- One chunk of an import; rows whose fingerprint is already stored are skipped, and
-- the fingerprints of the inserted rows come back. Each code's life starts with its
-- IMPORTED event, naming its batch.
WITH inserted AS (
    INSERT INTO codes (pool_id, batch_id, fingerprint, code_ciphertext, password_ciphertext,
                       key_id, last4, expires_at)
    SELECT $1, $2, r.fingerprint, r.code_ciphertext, r.password_ciphertext, $3, r.last4,
           r.expires_at
    FROM unnest($4::int[], $5::bytea[], $6::bytea[], $7::bytea[], $8::text[],
                $9::timestamptz[])
        AS r (row_number, fingerprint, code_ciphertext, password_ciphertext, last4, expires_at)
    ORDER BY r.row_number
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING id, fingerprint
), events AS (
    INSERT INTO code_events (code_id, kind, actor, detail)
    SELECT id, 'IMPORTED', 'import', jsonb_build_object('batch_id', $2::bigint)
    FROM inserted
    ORDER BY id
)
SELECT fingerprint FROM inserted;

-- name: batches_of_fingerprints
SELECT fingerprint, batch_id FROM codes WHERE fingerprint = ANY($1::bytea[]);

-- name: page
SELECT id, pool_id, batch_id, last4, status, expires_at, created_at
FROM codes
WHERE pool_id = $1 AND id > $2 AND ($3::text IS NULL OR status = $3)
ORDER BY id
LIMIT $4;

-- name: secrets
SELECT id, fingerprint, code_ciphertext, password_ciphertext, key_id, expires_at
FROM codes
WHERE id = ANY($1::bigint[]);

-- name: order_secrets
SELECT c.id, c.fingerprint, c.code_ciphertext, c.password_ciphertext, c.key_id, c.expires_at
FROM order_codes oc JOIN codes c ON c.id = oc.code_id
WHERE oc.order_id = $1
ORDER BY c.id;
