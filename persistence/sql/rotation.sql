-- name: codes_batch
-- Rows still sealed with an old key, in id order from where the last batch ended.
-- Rows another transaction holds (the pool's actor changing a status) are skipped and
-- picked up by the next pass: only the ciphertext changes here, never the status.
SELECT id, fingerprint, code_ciphertext, password_ciphertext, key_id
FROM codes
WHERE key_id = ANY($1::int[]) AND id > $2
ORDER BY id
LIMIT $3
FOR NO KEY UPDATE SKIP LOCKED;

-- name: rewrite_codes
UPDATE codes AS c
SET code_ciphertext = u.code_ciphertext, password_ciphertext = u.password_ciphertext, key_id = $1
FROM unnest($2::bigint[], $3::int[], $4::bytea[], $5::bytea[])
    AS u (id, old_key_id, code_ciphertext, password_ciphertext)
WHERE c.id = u.id AND c.key_id = u.old_key_id;

-- name: count_codes_with_keys
SELECT count(*) FROM codes WHERE key_id = ANY($1::int[]);

-- name: suppliers_batch
SELECT id, secret_ciphertext, key_id
FROM suppliers
WHERE key_id = ANY($1::int[]) AND id > $2
ORDER BY id
LIMIT $3
FOR NO KEY UPDATE SKIP LOCKED;

-- name: rewrite_suppliers
UPDATE suppliers AS s
SET secret_ciphertext = u.secret_ciphertext, key_id = $1
FROM unnest($2::bigint[], $3::int[], $4::bytea[]) AS u (id, old_key_id, secret_ciphertext)
WHERE s.id = u.id AND s.key_id = u.old_key_id;

-- name: count_suppliers_with_keys
SELECT count(*) FROM suppliers WHERE key_id = ANY($1::int[]);

-- name: webhook_endpoints_batch
SELECT id, secret_ciphertext, key_id
FROM webhook_endpoints
WHERE key_id = ANY($1::int[]) AND id > $2
ORDER BY id
LIMIT $3
FOR NO KEY UPDATE SKIP LOCKED;

-- name: rewrite_webhook_endpoints
UPDATE webhook_endpoints AS w
SET secret_ciphertext = u.secret_ciphertext, key_id = $1
FROM unnest($2::bigint[], $3::int[], $4::bytea[]) AS u (id, old_key_id, secret_ciphertext)
WHERE w.id = u.id AND w.key_id = u.old_key_id;

-- name: count_webhook_endpoints_with_keys
SELECT count(*) FROM webhook_endpoints WHERE key_id = ANY($1::int[]);

-- name: delete_unused_keys
-- The foreign keys stay the last word: a row inserted with an old key by a transaction
-- still running makes this fail, and the rotation makes another pass.
DELETE FROM encryption_keys AS k
WHERE k.id = ANY($1::int[]) AND NOT k.active
  AND NOT EXISTS (SELECT 1 FROM codes WHERE key_id = k.id)
  AND NOT EXISTS (SELECT 1 FROM suppliers WHERE key_id = k.id)
  AND NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE key_id = k.id)
RETURNING k.id;
