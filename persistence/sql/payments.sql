-- name: claim
-- Nothing when the gateway's transaction id was claimed already (also by a concurrent
-- transaction, which this waits for).
INSERT INTO payments (transaction_id, order_id, amount, source, outcome,
                      ledger_transaction_id, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (transaction_id) DO NOTHING
RETURNING *;

-- name: by_transaction
SELECT * FROM payments WHERE transaction_id = $1;

-- name: of_order
SELECT * FROM payments WHERE order_id = $1 ORDER BY id;
