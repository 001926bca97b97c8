-- Paid orders written in one statement. A pool actor's sale batch used to send a dozen
-- statements (accounts, wallets, ledger, orders, codes, events, deliveries, the codes'
-- state), each a round trip while every order of the batch and the next batch waited.
-- These functions do the same work in the database, set-based, for a whole batch.

-- What a buyer's answer needs of a code: its secrets as stored.
CREATE TYPE sealed_code AS (
    id bigint,
    fingerprint bytea,
    code_ciphertext bytea,
    password_ciphertext bytea,
    key_id integer,
    expires_at timestamptz
);

-- One order of a batch: PAID with what the database gave its row (the caller knows the
-- rest) and its codes, or why nothing of it was written (INSUFFICIENT_BALANCE; DUPLICATE:
-- its sale reference is taken, by a commit before or by an earlier order of the batch).
CREATE TYPE placed_order AS (
    n integer,
    outcome text,
    order_id bigint,
    sale_transaction_id bigint,
    created_at timestamptz,
    paid_at timestamptz,
    sealed sealed_code[]
);

-- One row per requested delivery; WEBHOOK becomes one row per active endpoint of the
-- order's channel subscribed to order.paid (none when it has none). A LINK is delivered
-- as it is written: the page exists from then on. Rows queued before are left as they are.
CREATE FUNCTION queue_deliveries(
    p_orders bigint[], p_channels bigint[], p_methods text[], p_targets text[]
) RETURNS void LANGUAGE sql AS $$
INSERT INTO deliveries (order_id, channel_id, method, target, endpoint_id, status, attempts,
                        delivered_at)
SELECT r.order_id, r.channel_id, r.method, r.target, e.id,
       CASE WHEN r.method = 'LINK' THEN 'DELIVERED' ELSE 'PENDING' END,
       CASE WHEN r.method = 'LINK' THEN 1 ELSE 0 END,
       CASE WHEN r.method = 'LINK' THEN now() END
FROM unnest(p_orders, p_channels, p_methods, p_targets) WITH ORDINALITY
    AS r (order_id, channel_id, method, target, n)
LEFT JOIN webhook_endpoints e
    ON r.method = 'WEBHOOK' AND e.channel_id = r.channel_id AND e.disabled_at IS NULL
   AND 'order.paid' = ANY (e.events)
WHERE r.method <> 'WEBHOOK' OR e.id IS NOT NULL
ORDER BY r.n, e.id
ON CONFLICT DO NOTHING;
$$;

-- Codes straight from available to sold, each under its sale's reference, and the pool's
-- counters after. The caller holds the pool row under its epoch (the fence); a code that
-- is not available is not moved, and the caller compares `moved` with what it asked.
CREATE FUNCTION sell_codes(p_pool bigint, p_ids bigint[], p_refs text[])
RETURNS TABLE (moved bigint, available bigint, reserved bigint, sold bigint, frozen bigint,
               voided bigint)
LANGUAGE sql AS $$
WITH moved AS (
    UPDATE codes c
    SET status = 'sold', reservation_ref = u.ref, sold_at = now()
    FROM unnest(p_ids, p_refs) AS u (id, ref)
    -- The ANY keeps the scan of codes to these ids whatever the planner thinks of the
    -- pool's size (fresh imports have no statistics yet): no walk of the whole pool.
    WHERE c.id = u.id AND c.id = ANY (p_ids) AND c.pool_id = p_pool AND c.status = 'available'
    RETURNING c.id
)
UPDATE pools
SET available = pools.available - (SELECT count(*) FROM moved),
    sold = pools.sold + (SELECT count(*) FROM moved)
WHERE pools.id = p_pool
RETURNING (SELECT count(*) FROM moved), pools.available, pools.reserved, pools.sold,
          pools.frozen, pools.voided;
$$;

-- Orders paid from their buyers' wallets, given their codes, in the caller's transaction.
-- Arrays o_* hold one element per order, in the batch's order; e_* one per ledger posting
-- and c_* one per code, each naming its order by position (1-based). Who can pay is
-- decided in order against the wallets' balances, locked in id order; the wallet CHECK
-- still has the last word. An order refused writes nothing.
CREATE FUNCTION place_paid_orders(
    p_pool bigint,
    o_ref text[], o_ledger_hash text[], o_channel bigint[], o_product bigint[],
    o_quantity integer[], o_key text[], o_input_hash text[], o_unit_price numeric[],
    o_total numeric[], o_buyer text[], o_delivery text[], o_actor text[],
    e_order integer[], e_kind text[], e_channel bigint[], e_supplier bigint[],
    e_amount numeric[],
    c_order integer[], c_code bigint[]
) RETURNS SETOF placed_order LANGUAGE plpgsql AS $$
DECLARE
    batch integer := coalesce(cardinality(o_ref), 0);
    outcome text[] := array_fill('PAID'::text, ARRAY[batch]);
    e_account bigint[];
    wallets bigint[];
    balances numeric[];
    paid_refs text[] := '{}';
    debit_accounts bigint[];
    debits numeric[];
    payable boolean;
    w integer;
    tx bigint[];
    order_ids bigint[];
    created timestamptz[];
    paid timestamptz[];
    entries_at timestamptz := clock_timestamp();
BEGIN
    IF batch = 0 THEN
        RETURN;
    END IF;

    -- The postings' accounts, opened where missing (a concurrent opener of one wins).
    INSERT INTO ledger_accounts (kind, channel_id, supplier_id)
    SELECT DISTINCT e.kind, e.channel_id, e.supplier_id
    FROM unnest(e_kind, e_channel, e_supplier) AS e (kind, channel_id, supplier_id)
    WHERE NOT EXISTS (
        SELECT 1 FROM ledger_accounts a
        WHERE a.kind = e.kind
          AND coalesce(a.channel_id, 0) = coalesce(e.channel_id, 0)
          AND coalesce(a.supplier_id, 0) = coalesce(e.supplier_id, 0)
    )
    ORDER BY 1, 2, 3
    ON CONFLICT (kind, (coalesce(channel_id, 0)), (coalesce(supplier_id, 0))) DO NOTHING;
    SELECT array_agg(a.id ORDER BY e.k) INTO e_account
    FROM unnest(e_kind, e_channel, e_supplier) WITH ORDINALITY
        AS e (kind, channel_id, supplier_id, k)
    JOIN ledger_accounts a
        ON a.kind = e.kind
       AND coalesce(a.channel_id, 0) = coalesce(e.channel_id, 0)
       AND coalesce(a.supplier_id, 0) = coalesce(e.supplier_id, 0);

    -- The wallets, locked in id order: concurrent batches wait on each other in one order.
    SELECT coalesce(array_agg(l.id ORDER BY l.id), '{}'),
           coalesce(array_agg(l.balance ORDER BY l.id), '{}')
    INTO wallets, balances
    FROM (SELECT a.id, a.balance FROM ledger_accounts a
          WHERE a.id = ANY (e_account) AND a.kind = 'CHANNEL_WALLET'
          ORDER BY a.id FOR UPDATE) AS l;

    -- Balances are raw: money in a wallet is negative, a debit positive.
    FOR i IN 1 .. batch LOOP
        IF o_ref[i] = ANY (paid_refs) THEN
            outcome[i] := 'DUPLICATE';
            CONTINUE;
        END IF;
        SELECT array_agg(d.account), array_agg(d.debit) INTO debit_accounts, debits
        FROM (SELECT e.account, sum(e.amount) AS debit
              FROM unnest(e_order, e_account, e_amount) AS e (o, account, amount)
              WHERE e.o = i AND e.account = ANY (wallets)
              GROUP BY e.account) AS d;
        payable := true;
        FOR k IN 1 .. coalesce(cardinality(debit_accounts), 0) LOOP
            w := array_position(wallets, debit_accounts[k]);
            payable := payable AND balances[w] + debits[k] <= 0;
        END LOOP;
        IF NOT payable THEN
            outcome[i] := 'INSUFFICIENT_BALANCE';
            CONTINUE;
        END IF;
        FOR k IN 1 .. coalesce(cardinality(debit_accounts), 0) LOOP
            w := array_position(wallets, debit_accounts[k]);
            balances[w] := balances[w] + debits[k];
        END LOOP;
        paid_refs := paid_refs || o_ref[i];
    END LOOP;

    -- The sales' ledger transactions: a reference taken before means the order was placed
    -- before (a retry), and nothing of it is written here.
    WITH inserted AS (
        INSERT INTO ledger_transactions (kind, reference, input_hash, channel_id, product_id,
                                         quantity)
        SELECT 'SALE', o.ref, o.hash, o.channel, o.product, o.quantity
        FROM unnest(o_ref, o_ledger_hash, o_channel, o_product, o_quantity) WITH ORDINALITY
            AS o (ref, hash, channel, product, quantity, i)
        WHERE outcome[o.i] = 'PAID'
        ORDER BY o.i
        ON CONFLICT DO NOTHING
        RETURNING id, reference
    )
    SELECT array_agg(t.id ORDER BY o.i) INTO tx
    FROM unnest(o_ref) WITH ORDINALITY AS o (ref, i)
    LEFT JOIN inserted t ON t.reference = o.ref AND outcome[o.i] = 'PAID';
    FOR i IN 1 .. batch LOOP
        IF outcome[i] = 'PAID' AND tx[i] IS NULL THEN
            outcome[i] := 'DUPLICATE';
        END IF;
    END LOOP;

    INSERT INTO ledger_entries (transaction_id, account_id, amount, created_at)
    SELECT tx[e.o], e.account, e.amount, entries_at
    FROM unnest(e_order, e_account, e_amount) WITH ORDINALITY AS e (o, account, amount, k)
    WHERE outcome[e.o] = 'PAID'
    ORDER BY e.k;

    WITH inserted AS (
        INSERT INTO orders (channel_id, product_id, idempotency_key, input_hash, quantity,
                            unit_price, total, payment, status, pool_id, sale_transaction_id,
                            buyer, paid_at, delivery)
        SELECT o.channel, o.product, o.key, o.hash, o.quantity, o.unit_price, o.total,
               'BALANCE', 'PAID', p_pool, tx[o.i], o.buyer::jsonb, now(), o.delivery::jsonb
        FROM unnest(o_channel, o_product, o_key, o_input_hash, o_quantity, o_unit_price,
                    o_total, o_buyer, o_delivery) WITH ORDINALITY
            AS o (channel, product, key, hash, quantity, unit_price, total, buyer, delivery, i)
        WHERE outcome[o.i] = 'PAID'
        ORDER BY o.i
        ON CONFLICT (channel_id, idempotency_key) DO NOTHING
        RETURNING id, channel_id, idempotency_key, created_at, paid_at
    )
    SELECT array_agg(r.id ORDER BY o.i), array_agg(r.created_at ORDER BY o.i),
           array_agg(r.paid_at ORDER BY o.i)
    INTO order_ids, created, paid
    FROM unnest(o_channel, o_key) WITH ORDINALITY AS o (channel, key, i)
    LEFT JOIN inserted r
        ON r.channel_id = o.channel AND r.idempotency_key = o.key AND outcome[o.i] = 'PAID';
    IF (SELECT count(*) FROM unnest(order_ids) AS id WHERE id IS NOT NULL)
       <> (SELECT count(*) FROM unnest(outcome) AS s WHERE s = 'PAID') THEN
        -- The ledger reference and the order key are one; only a row written by hand
        -- could split them. Abort rather than leave money without an order.
        RAISE EXCEPTION 'orders and their ledger transactions disagree';
    END IF;

    -- Codes an unpaid order still holds on paper: its reservation went back to stock (by
    -- the sweeper) before the expiry pass detached them.
    DELETE FROM order_codes oc USING orders o
    WHERE oc.code_id = ANY (c_code) AND o.id = oc.order_id
      AND o.status IN ('AWAITING_PAYMENT', 'REVIEW', 'EXPIRED', 'CANCELLED');
    INSERT INTO order_codes (order_id, code_id)
    SELECT order_ids[c.o], c.code
    FROM unnest(c_order, c_code) AS c (o, code)
    WHERE outcome[c.o] = 'PAID';
    INSERT INTO code_events (code_id, kind, order_id, channel_id, actor)
    SELECT c.code, k.kind, order_ids[c.o], o_channel[c.o], o_actor[c.o]
    FROM unnest(c_order, c_code) AS c (o, code)
    CROSS JOIN (VALUES (1, 'SOLD'), (2, 'DELIVERED')) AS k (n, kind)
    WHERE outcome[c.o] = 'PAID'
    ORDER BY k.n, c.code;

    PERFORM queue_deliveries(
        array_agg(order_ids[o.i] ORDER BY o.i, d.k), array_agg(o_channel[o.i] ORDER BY o.i, d.k),
        array_agg(d.item ->> 'method' ORDER BY o.i, d.k),
        array_agg(d.item ->> 'target' ORDER BY o.i, d.k))
    FROM generate_series(1, batch) AS o (i),
         jsonb_array_elements(o_delivery[o.i]::jsonb) WITH ORDINALITY AS d (item, k)
    WHERE outcome[o.i] = 'PAID'
    HAVING count(*) > 0;

    RETURN QUERY
    SELECT o.i, outcome[o.i], order_ids[o.i], tx[o.i], created[o.i], paid[o.i],
           CASE WHEN outcome[o.i] = 'PAID' THEN (
               SELECT array_agg(ROW(s.id, s.fingerprint, s.code_ciphertext,
                                    s.password_ciphertext, s.key_id, s.expires_at)::sealed_code
                                ORDER BY s.id)
               FROM codes s
               WHERE s.id = ANY (ARRAY(SELECT c.code FROM unnest(c_order, c_code) AS c (o, code)
                                       WHERE c.o = o.i)))
           END
    FROM generate_series(1, batch) AS o (i);
END
$$;

-- A pool actor's sale batch: the orders above, and their codes sold, fenced by the pool's
-- epoch (a stale actor changes nothing). Each row carries the pool's counters after.
CREATE FUNCTION sell_paid_orders(
    p_pool bigint, p_epoch bigint,
    o_ref text[], o_ledger_hash text[], o_channel bigint[], o_product bigint[],
    o_quantity integer[], o_key text[], o_input_hash text[], o_unit_price numeric[],
    o_total numeric[], o_buyer text[], o_delivery text[], o_actor text[],
    e_order integer[], e_kind text[], e_channel bigint[], e_supplier bigint[],
    e_amount numeric[],
    c_order integer[], c_code bigint[]
) RETURNS TABLE (n integer, outcome text, order_id bigint, sale_transaction_id bigint,
                 created_at timestamptz, paid_at timestamptz, sealed sealed_code[], available bigint, reserved bigint, sold bigint, frozen bigint, voided bigint)
LANGUAGE plpgsql AS $$
DECLARE
    results placed_order[];
    sold_ids bigint[];
    sold_refs text[];
    after record;
BEGIN
    PERFORM 1 FROM pools WHERE pools.id = p_pool AND pools.epoch = p_epoch FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % is past epoch %', p_pool, p_epoch USING ERRCODE = 'QY001';
    END IF;
    SELECT coalesce(array_agg(r ORDER BY r.n), '{}') INTO results
    FROM place_paid_orders(
        p_pool, o_ref, o_ledger_hash, o_channel, o_product, o_quantity, o_key, o_input_hash,
        o_unit_price, o_total, o_buyer, o_delivery, o_actor,
        e_order, e_kind, e_channel, e_supplier, e_amount, c_order, c_code) AS r;
    SELECT coalesce(array_agg(c.code), '{}'), coalesce(array_agg(o_ref[c.o]), '{}')
    INTO sold_ids, sold_refs
    FROM unnest(c_order, c_code) AS c (o, code)
    WHERE (results[c.o]).outcome = 'PAID';
    SELECT * INTO after FROM sell_codes(p_pool, sold_ids, sold_refs);
    IF after.moved <> cardinality(sold_ids) THEN
        -- Codes the actor believed free were not: nothing of the batch stands.
        RAISE EXCEPTION 'pool %: % of % codes were not available', p_pool,
            cardinality(sold_ids) - after.moved, cardinality(sold_ids)
            USING ERRCODE = 'QY002';
    END IF;
    RETURN QUERY
    SELECT r.n, r.outcome, r.order_id, r.sale_transaction_id, r.created_at, r.paid_at, r.sealed,
           after.available, after.reserved, after.sold, after.frozen, after.voided
    FROM unnest(results) AS r;
END
$$;
