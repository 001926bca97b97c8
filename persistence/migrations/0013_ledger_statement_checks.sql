-- The ledger's rules, kept once per statement instead of once per entry. A sale's three
-- or four entries each ran a wallet update and queued a balance check for the commit,
-- which summed the same transaction again for every entry: most of the database's work
-- for an order. Now each INSERT of entries moves each wallet it touches once, by the sum
-- of its entries, and checks each transaction it touches once, at once: the entries of
-- a ledger transaction are written by one statement (as every writer here does), so no
-- statement may leave a transaction unbalanced, not even until the commit.

DROP TRIGGER ledger_entries_apply ON ledger_entries;
DROP TRIGGER ledger_entries_balanced ON ledger_entries;
DROP FUNCTION ledger_apply_entry();
DROP FUNCTION ledger_check_balanced();

CREATE FUNCTION ledger_apply_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced bigint;
    total numeric;
BEGIN
    -- Wallets keep their balance (the overdraft CHECK is one row); writers lock them in
    -- id order before they post, so this moves rows already theirs.
    UPDATE ledger_accounts a SET balance = a.balance + s.amount
    FROM (SELECT account_id, sum(amount) AS amount FROM new_entries GROUP BY account_id) AS s
    WHERE a.id = s.account_id AND a.kind = 'CHANNEL_WALLET';

    SELECT e.transaction_id, sum(e.amount) INTO unbalanced, total
    FROM ledger_entries e
    WHERE e.transaction_id IN (SELECT DISTINCT transaction_id FROM new_entries)
    GROUP BY e.transaction_id
    HAVING sum(e.amount) <> 0
    LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: debits - credits = %',
            unbalanced, total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_entries();
