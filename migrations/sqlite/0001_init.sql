-- scanpay schema (SQLite). Money is integer fen; times are UTC milliseconds since the Unix epoch.

CREATE TABLE products (
    sku           VARCHAR(32)  NOT NULL PRIMARY KEY,
    name          VARCHAR(64)  NOT NULL,
    description   VARCHAR(256) NOT NULL,
    price_fen     BIGINT       NOT NULL CHECK (price_fen > 0),
    stock         BIGINT       NOT NULL CHECK (stock >= 0),
    position      INTEGER      NOT NULL
);

CREATE TABLE orders (
    id             VARCHAR(32)  NOT NULL PRIMARY KEY,   -- our out_trade_no
    session_id     VARCHAR(64)  NOT NULL,
    status         VARCHAR(16)  NOT NULL,               -- pending | closing | paid | closed | failed
    total_fee      BIGINT       NOT NULL CHECK (total_fee > 0),
    body           VARCHAR(128) NOT NULL,
    created_at     BIGINT       NOT NULL,
    deadline_at    BIGINT       NOT NULL,
    code_url       VARCHAR(256),
    prepay_id      VARCHAR(64),
    transaction_id VARCHAR(32) UNIQUE,
    paid_at        BIGINT,
    finished_at    BIGINT,
    failure_reason VARCHAR(32),                          -- expired | cancelled | payment_not_created
    -- When the reconciliation sweep looks at it next; NULL once finished or parked, so the sweep's
    -- index holds only work that can become due.
    next_check_at  BIGINT,
    check_attempts INTEGER      NOT NULL DEFAULT 0,
    -- Set when a payment that cannot be applied needs an operator: no more automatic checks.
    parked_at      BIGINT,
    hidden_at      BIGINT,                               -- logical delete only
    updated_at     BIGINT       NOT NULL
);
CREATE INDEX orders_session ON orders (session_id, created_at);
-- The sweep: `next_check_at <= now`, earliest first.
CREATE INDEX orders_due ON orders (next_check_at);
-- The timeout scheduler: pending orders by deadline (and the next deadline ahead).
CREATE INDEX orders_deadline ON orders (status, deadline_at);

CREATE TABLE order_items (
    order_id       VARCHAR(32) NOT NULL,
    sku            VARCHAR(32) NOT NULL,
    name           VARCHAR(64) NOT NULL,
    unit_price_fen BIGINT      NOT NULL,
    qty            BIGINT      NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, sku)
);

-- The order's timeline: every transition and notable fact, with who or what caused it.
CREATE TABLE order_events (
    order_id VARCHAR(32)   NOT NULL,
    seq      INTEGER       NOT NULL,
    at       BIGINT        NOT NULL,
    kind     VARCHAR(32)   NOT NULL,
    cause    VARCHAR(16)   NOT NULL,   -- shopper | notify | sweep | timeout | operator | system
    detail   VARCHAR(1024) NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Verified pay results waiting for (or done by) the order consumer: the embedded bus.
CREATE TABLE pay_inbox (
    transaction_id VARCHAR(32) NOT NULL PRIMARY KEY,
    out_trade_no   VARCHAR(32) NOT NULL,
    total_fee      BIGINT      NOT NULL,
    time_end       VARCHAR(14) NOT NULL,
    paid_at        BIGINT      NOT NULL,
    received_at    BIGINT      NOT NULL,
    processed_at   BIGINT,
    outcome        VARCHAR(32),
    -- Failed applications back off; NULL once processed.
    attempts       INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error     VARCHAR(512)
);
CREATE INDEX pay_inbox_due ON pay_inbox (next_attempt_at);

-- Things an operator must look at: money that does not fit an order.
CREATE TABLE anomalies (
    id          VARCHAR(32)   NOT NULL PRIMARY KEY,
    order_id    VARCHAR(32)   NOT NULL,
    transaction_id VARCHAR(32) NOT NULL,
    kind        VARCHAR(32)   NOT NULL,   -- amount_mismatch | paid_after_close | second_payment | unknown_order
    detail      VARCHAR(1024) NOT NULL,
    at          BIGINT        NOT NULL,
    resolved_at BIGINT
);
-- One record per order and WeChat transaction, however often the evidence arrives.
CREATE UNIQUE INDEX anomalies_once ON anomalies (order_id, transaction_id);

-- Secrets scanpay generates for itself when none is configured (the session-cookie key), shared by
-- every process on this database and kept across restarts.
CREATE TABLE app_secrets (
    name       VARCHAR(32)  NOT NULL PRIMARY KEY,
    value      VARCHAR(128) NOT NULL,
    created_at BIGINT       NOT NULL
);
