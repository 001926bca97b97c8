-- name: find_accounts
-- The accounts of the given owners ($1 kinds, $2 channel ids, $3 supplier ids).
SELECT a.id, a.kind, a.channel_id, a.supplier_id
FROM ledger_accounts a
JOIN unnest($1::text[], $2::bigint[], $3::bigint[]) AS w (kind, channel_id, supplier_id)
    ON a.kind = w.kind
    AND coalesce(a.channel_id, 0) = coalesce(w.channel_id, 0)
    AND coalesce(a.supplier_id, 0) = coalesce(w.supplier_id, 0)
ORDER BY a.id;

-- name: lock_wallets
-- Wallets among the accounts $1, locked in id order: concurrent postings wait on each other
-- in one order (no deadlocks) and only where a balance is checked. Other accounts keep no
-- stored balance, so sales do not queue on the platform's revenue or a supplier's payable.
SELECT id FROM ledger_accounts
WHERE id = ANY($1::bigint[]) AND kind = 'CHANNEL_WALLET'
ORDER BY id
FOR UPDATE;

-- name: insert_accounts
-- Opens the accounts that do not exist yet; a concurrent opener of the same one wins.
INSERT INTO ledger_accounts (kind, channel_id, supplier_id)
SELECT w.kind, w.channel_id, w.supplier_id
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS w (kind, channel_id, supplier_id)
ORDER BY w.kind, coalesce(w.channel_id, 0), coalesce(w.supplier_id, 0)
ON CONFLICT (kind, (coalesce(channel_id, 0)), (coalesce(supplier_id, 0))) DO NOTHING;

-- name: insert_transaction
-- Nothing when the (kind, reference) or the reversed transaction is taken: the caller then
-- reads the one that took it.
INSERT INTO ledger_transactions
    (kind, reference, input_hash, reverses_id, channel_id, product_id, quantity, memo)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING
RETURNING id, kind, reference, input_hash, reverses_id, channel_id, product_id, quantity, memo,
    created_at;

-- name: conflicting_transaction
-- The transaction holding the (kind, reference) $1, $2, or else the reversal of $3.
SELECT id, kind, reference, input_hash, reverses_id, channel_id, product_id, quantity, memo,
    created_at
FROM ledger_transactions
WHERE (kind = $1 AND reference = $2) OR reverses_id = $3
ORDER BY (kind = $1 AND reference = $2) DESC NULLS LAST
LIMIT 1;

-- name: transaction_by_id
SELECT id, kind, reference, input_hash, reverses_id, channel_id, product_id, quantity, memo,
    created_at
FROM ledger_transactions
WHERE id = $1;

-- name: transaction_by_reference
SELECT id, kind, reference, input_hash, reverses_id, channel_id, product_id, quantity, memo,
    created_at
FROM ledger_transactions
WHERE kind = $1 AND reference = $2;

-- name: insert_entries
-- One timestamp for the whole transaction, taken after its accounts were locked.
WITH at AS (SELECT clock_timestamp() AS created_at)
INSERT INTO ledger_entries (transaction_id, account_id, amount, created_at)
SELECT $1, u.account_id, u.amount, at.created_at
FROM unnest($2::bigint[], $3::numeric[]) WITH ORDINALITY AS u (account_id, amount, n), at
ORDER BY u.n
RETURNING id, account_id, amount, created_at;

-- name: entries_of
SELECT e.id, e.account_id, e.amount, e.created_at, a.kind, a.channel_id, a.supplier_id
FROM ledger_entries e
JOIN ledger_accounts a ON a.id = e.account_id
WHERE e.transaction_id = $1
ORDER BY e.id;

-- name: balance
-- Wallets keep their balance on the row; other accounts sum their entries.
SELECT CASE WHEN a.kind = 'CHANNEL_WALLET' THEN a.balance
            ELSE (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e
                  WHERE e.account_id = a.id) END AS balance
FROM ledger_accounts a
WHERE a.kind = $1
    AND coalesce(a.channel_id, 0) = coalesce($2::bigint, 0)
    AND coalesce(a.supplier_id, 0) = coalesce($3::bigint, 0);

-- name: statement_opening
-- The sum of an account's entries before $2.
SELECT coalesce(sum(amount), 0) AS opening
FROM ledger_entries
WHERE account_id = $1 AND created_at < $2;

-- name: statement_totals
-- An account's entries in [$2, $3) by transaction kind; debit and credit as magnitudes.
SELECT t.kind,
    coalesce(sum(e.amount) FILTER (WHERE e.amount > 0), 0) AS debit,
    coalesce(-sum(e.amount) FILTER (WHERE e.amount < 0), 0) AS credit,
    count(*) AS count
FROM ledger_entries e
JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE e.account_id = $1 AND e.created_at >= $2 AND e.created_at < $3
GROUP BY t.kind
ORDER BY t.kind;

-- name: statement_page
-- Entries of an account in [$2, $3) with id above $4, in id order, $5 of them, each with
-- the sum of the period's entries up to and including it.
WITH before AS (
    SELECT coalesce(sum(amount), 0) AS total
    FROM ledger_entries
    WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 AND id <= $4
), page AS (
    SELECT id, transaction_id, amount, created_at
    FROM ledger_entries
    WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 AND id > $4
    ORDER BY id
    LIMIT $5
)
SELECT page.id, page.transaction_id, page.amount, page.created_at, t.kind, t.reference,
    t.memo, before.total + sum(page.amount) OVER (ORDER BY page.id) AS running
FROM page
JOIN ledger_transactions t ON t.id = page.transaction_id
CROSS JOIN before
ORDER BY page.id;

-- name: statement_rows
-- Every entry of an account in [$2, $3), in id order (read through a cursor).
SELECT e.id, e.transaction_id, e.amount, e.created_at, t.kind, t.reference, t.memo
FROM ledger_entries e
JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE e.account_id = $1 AND e.created_at >= $2 AND e.created_at < $3
ORDER BY e.id;

-- name: trial_balance
-- Every account with its balance: the sum of its entries.
SELECT a.id, a.kind, a.channel_id, a.supplier_id, coalesce(sum(e.amount), 0) AS balance
FROM ledger_accounts a
LEFT JOIN ledger_entries e ON e.account_id = a.id
GROUP BY a.id
ORDER BY a.kind, a.channel_id NULLS FIRST, a.supplier_id NULLS FIRST, a.id;

-- name: channels_by_ids
-- The columns ChannelRecord.from_row reads (as in channels.sql).
SELECT id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
       default_markup_percent
FROM channels
WHERE id = ANY($1::bigint[]);

-- name: replay_mismatches
-- Wallets whose kept balance differs from the sum of their entries (none, ever).
SELECT a.id, a.balance, coalesce(sum(e.amount), 0) AS replayed
FROM ledger_accounts a
LEFT JOIN ledger_entries e ON e.account_id = a.id
WHERE a.kind = 'CHANNEL_WALLET'
GROUP BY a.id
HAVING a.balance <> coalesce(sum(e.amount), 0)
ORDER BY a.id;
