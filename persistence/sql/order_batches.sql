-- A whole batch of paid orders, written set-based: a few statements per batch instead of
-- a dozen per order. Used inside the pool actor's sale transaction.

-- name: lock_wallets
-- The batch's wallets, locked in id order, with their balances (raw: negative is money).
SELECT id, balance FROM ledger_accounts
WHERE id = ANY($1::bigint[]) AND kind = 'CHANNEL_WALLET'
ORDER BY id
FOR UPDATE;

-- name: insert_transactions
-- Nothing for a reference taken already: that order was placed before (a retry).
INSERT INTO ledger_transactions (kind, reference, input_hash, channel_id, product_id, quantity)
SELECT 'SALE', u.reference, u.input_hash, u.channel_id, u.product_id, u.quantity
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::int[])
    WITH ORDINALITY AS u (reference, input_hash, channel_id, product_id, quantity, n)
ORDER BY u.n
ON CONFLICT DO NOTHING
RETURNING id, reference;

-- name: insert_entries
WITH at AS (SELECT clock_timestamp() AS created_at)
INSERT INTO ledger_entries (transaction_id, account_id, amount, created_at)
SELECT u.transaction_id, u.account_id, u.amount, at.created_at
FROM unnest($1::bigint[], $2::bigint[], $3::numeric[]) WITH ORDINALITY
    AS u (transaction_id, account_id, amount, n), at
ORDER BY u.n;

-- name: insert_orders
INSERT INTO orders (channel_id, product_id, idempotency_key, input_hash, quantity,
                    unit_price, total, payment, status, pool_id, sale_transaction_id, buyer,
                    paid_at, delivery)
SELECT u.channel_id, u.product_id, u.idempotency_key, u.input_hash, u.quantity,
       u.unit_price, u.total, 'BALANCE', 'PAID', $10, u.sale_transaction_id, u.buyer::jsonb,
       now(), u.delivery::jsonb
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::numeric[],
            $7::numeric[], $8::bigint[], $9::text[], $11::text[]) WITH ORDINALITY
    AS u (channel_id, product_id, idempotency_key, input_hash, quantity, unit_price, total,
          sale_transaction_id, buyer, delivery, n)
ORDER BY u.n
ON CONFLICT (channel_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: attach_codes
WITH attached AS (
    INSERT INTO order_codes (order_id, code_id)
    SELECT * FROM unnest($1::bigint[], $2::bigint[])
    RETURNING order_id, code_id
)
INSERT INTO code_events (code_id, kind, order_id, channel_id, actor)
SELECT a.code_id, k.kind, a.order_id, u.channel_id, u.actor
FROM attached a
JOIN unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[])
    AS u (order_id, code_id, channel_id, actor) ON u.code_id = a.code_id
CROSS JOIN (VALUES (1, 'SOLD'), (2, 'DELIVERED')) AS k (n, kind)
ORDER BY k.n, a.code_id;

-- name: sealed
-- The sold codes' secrets as stored, for the buyer's answer.
SELECT id, fingerprint, code_ciphertext, password_ciphertext, key_id, expires_at
FROM codes
WHERE id = ANY($1::bigint[]);
