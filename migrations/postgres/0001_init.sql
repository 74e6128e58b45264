-- scanpay schema (PostgreSQL). Money is integer fen (bigint); times are UTC milliseconds since the
-- Unix epoch (bigint), the same in every engine.

CREATE TABLE products (
    sku           text    NOT NULL PRIMARY KEY CHECK (length(sku) <= 32),
    name          text    NOT NULL,
    description   text    NOT NULL,
    price_fen     bigint  NOT NULL CHECK (price_fen > 0),
    stock         bigint  NOT NULL CHECK (stock >= 0),
    position      integer NOT NULL
);

CREATE TABLE orders (
    id             text   NOT NULL PRIMARY KEY,           -- our out_trade_no
    session_id     text   NOT NULL,
    status         text   NOT NULL CHECK (status IN ('pending', 'closing', 'paid', 'closed', 'failed')),
    total_fee      bigint NOT NULL CHECK (total_fee > 0),
    body           text   NOT NULL,
    created_at     bigint NOT NULL,
    deadline_at    bigint NOT NULL,
    code_url       text,
    prepay_id      text,
    transaction_id text   UNIQUE,
    paid_at        bigint,
    finished_at    bigint,
    failure_reason text,
    -- When the reconciliation sweep looks at it next; NULL once finished or parked.
    next_check_at  bigint,
    check_attempts bigint NOT NULL DEFAULT 0,
    -- Set when a payment that cannot be applied needs an operator: no more automatic checks.
    parked_at      bigint,
    hidden_at      bigint,                                -- logical delete only
    updated_at     bigint NOT NULL
);
CREATE INDEX orders_session ON orders (session_id, created_at);
-- The sweep: due checks of unfinished, unparked orders only.
CREATE INDEX orders_due ON orders (next_check_at)
    WHERE status IN ('pending', 'closing') AND parked_at IS NULL;
-- The timeout scheduler: pending orders by deadline.
CREATE INDEX orders_deadline ON orders (deadline_at)
    WHERE status = 'pending' AND parked_at IS NULL;

CREATE TABLE order_items (
    order_id       text   NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
    sku            text   NOT NULL REFERENCES products (sku),
    name           text   NOT NULL,
    unit_price_fen bigint NOT NULL,
    qty            bigint NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, sku)
);

-- The order's timeline. `seq` numbers an order's events; it is taken under the order row's lock.
CREATE TABLE order_events (
    order_id text   NOT NULL,
    seq      bigint NOT NULL,
    at       bigint NOT NULL,
    kind     text   NOT NULL,
    cause    text   NOT NULL,
    detail   text   NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Verified pay results waiting for (or done by) the order consumer: the embedded bus.
CREATE TABLE pay_inbox (
    transaction_id  text   NOT NULL PRIMARY KEY,
    out_trade_no    text   NOT NULL,
    total_fee       bigint NOT NULL,
    time_end        text   NOT NULL,
    paid_at         bigint NOT NULL,
    received_at     bigint NOT NULL,
    processed_at    bigint,
    outcome         text,
    attempts        bigint NOT NULL DEFAULT 0,
    next_attempt_at bigint,
    last_error      text
);
CREATE INDEX pay_inbox_due ON pay_inbox (next_attempt_at) WHERE processed_at IS NULL;

-- Things an operator must look at: money that does not fit an order.
CREATE TABLE anomalies (
    id             text   NOT NULL PRIMARY KEY,
    order_id       text   NOT NULL,
    transaction_id text   NOT NULL,
    kind           text   NOT NULL,
    detail         text   NOT NULL,
    at             bigint NOT NULL,
    resolved_at    bigint,
    UNIQUE (order_id, transaction_id)
);

CREATE TABLE app_secrets (
    name       text   NOT NULL PRIMARY KEY,
    value      text   NOT NULL,
    created_at bigint NOT NULL
);
