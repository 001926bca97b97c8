-- REALTIME fulfilment (codes bought from a supplier when an order is paid) and
-- supplier catalog sync.

-- The deliveries an order asked for, kept so that a payment confirmed later, or a supplier
-- order completed later, can still queue them.
ALTER TABLE orders ADD COLUMN delivery jsonb NOT NULL DEFAULT '[]';

-- FULFILLING: paid, waiting for the supplier's codes.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('AWAITING_PAYMENT',
    'REVIEW', 'FULFILLING', 'PAID', 'FAILED', 'EXPIRED', 'CANCELLED', 'REFUNDED'));

-- One purchase from a supplier per order. Its ref is derived from the order, so asking
-- again (a retry, a restart, 补单) never buys twice.
CREATE TABLE supplier_orders (
    order_id bigint PRIMARY KEY REFERENCES orders (id),
    supplier_id bigint NOT NULL REFERENCES suppliers (id),
    ref text NOT NULL UNIQUE,
    sku text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    status text NOT NULL CHECK (status IN ('PENDING', 'FULFILLED', 'FAILED')),
    -- 1 for the first purchase, one more for each re-placement (补单): each is paid anew.
    round integer NOT NULL DEFAULT 1 CHECK (round >= 1),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    -- The process working on it holds it until then; after that another may take it up.
    leased_until timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX supplier_orders_pending ON supplier_orders (leased_until) WHERE status = 'PENDING';

ALTER TABLE code_events DROP CONSTRAINT code_events_kind_check;
ALTER TABLE code_events ADD CONSTRAINT code_events_kind_check CHECK (kind IN ('IMPORTED',
    'GENERATED', 'SUPPLIED', 'RESERVED', 'SOLD', 'DELIVERED', 'REVEALED', 'REDEEMED', 'FROZEN',
    'UNFROZEN', 'VOIDED', 'RELEASED'));

-- The codes of one supplier order are stored as one batch, keyed by the order's ref.
ALTER TABLE code_batches DROP CONSTRAINT code_batches_source_check;
ALTER TABLE code_batches ADD CONSTRAINT code_batches_source_check
    CHECK (source IN ('IMPORT', 'GENERATED', 'SUPPLIER'));

-- Catalog sync: when a supplier was last read, and products it no longer lists.
ALTER TABLE suppliers ADD COLUMN synced_at timestamptz;
ALTER TABLE products ADD COLUMN delisted_at timestamptz;
