-- Paid orders written set-based by the functions of migration 0012: one statement for a
-- whole batch instead of a dozen per order. The arguments, in order: per order the sale
-- reference, ledger input hash, channel, product, quantity, idempotency key, order input
-- hash, unit price, total, buyer (JSON), deliveries (JSON) and actor; per ledger posting
-- its order's position, account kind, channel, supplier and amount; per code its order's
-- position and id.

-- name: sell
-- A pool actor's sale: fenced by the pool's epoch ($1, $2), the orders written and their
-- codes sold; every row carries the pool's counters after.
SELECT * FROM sell_paid_orders(
    $1, $2, $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::integer[], $8::text[],
    $9::text[], $10::numeric[], $11::numeric[], $12::text[], $13::text[], $14::text[],
    $15::integer[], $16::text[], $17::bigint[], $18::bigint[], $19::numeric[],
    $20::integer[], $21::bigint[]);

-- name: place
-- Orders of codes sold already (issued for them), in pool $1, in the caller's transaction.
SELECT * FROM place_paid_orders(
    $1, $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::integer[], $7::text[],
    $8::text[], $9::numeric[], $10::numeric[], $11::text[], $12::text[], $13::text[],
    $14::integer[], $15::text[], $16::bigint[], $17::bigint[], $18::numeric[],
    $19::integer[], $20::bigint[]);
