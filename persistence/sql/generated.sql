-- Codes the platform issues itself at order time (fulfilment GENERATED).

-- name: pool_of_product
SELECT id FROM pools WHERE product_id = $1 AND name = $2 ORDER BY id LIMIT 1;

-- name: lock_pool_creation
-- Serialises the creation of a product's generated pool (pools have no unique name):
-- held until the transaction ends, taken only when the pool is missing.
SELECT pg_advisory_xact_lock($1, $2);

-- name: create_pool
-- Nothing when the product does not exist.
INSERT INTO pools (product_id, name)
SELECT id, $2 FROM products WHERE id = $1
RETURNING id;

-- name: lock_active_key
-- The active data key, locked against deletion by a key rotation until commit.
SELECT id FROM encryption_keys WHERE active FOR KEY SHARE;

-- name: insert_batch
INSERT INTO code_batches (pool_id, source, result)
VALUES ($1, 'GENERATED', $2::jsonb)
RETURNING id;

-- name: insert_codes
-- Sold at once: they are issued for an order. A fingerprint already stored (a collision
-- of two random codes) is skipped; the caller makes a fresh code for it.
INSERT INTO codes (pool_id, batch_id, fingerprint, code_ciphertext, password_ciphertext,
                   key_id, last4, expires_at, status, sold_at)
SELECT $1, $2, r.fingerprint, r.code_ciphertext, r.password_ciphertext, $3, r.last4, $7,
       'sold', now()
FROM unnest($4::bytea[], $5::bytea[], $6::bytea[], $8::text[])
    AS r (fingerprint, code_ciphertext, password_ciphertext, last4)
ON CONFLICT (fingerprint) DO NOTHING
RETURNING id, fingerprint;

-- name: count_sold
-- Relative: the pool's actor (freeze, void) may change the counters too.
UPDATE pools SET sold = sold + $2 WHERE id = $1;

-- name: record_generated
INSERT INTO code_events (code_id, kind, actor)
SELECT unnest($1::bigint[]), 'GENERATED', $2;
