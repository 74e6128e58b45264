-- scanpay schema (MySQL 8 / MariaDB 10.6+, InnoDB, utf8mb4). Money is integer fen (BIGINT); times
-- are UTC milliseconds since the Unix epoch (BIGINT), the same in every engine. The default
-- (case-insensitive) collation is kept: sqlx reads binary-collated text as bytes, and the ids
-- scanpay makes differ in more than case (ownership is compared exactly, in Rust).

CREATE TABLE products (
    sku           VARCHAR(32)  NOT NULL PRIMARY KEY,
    name          VARCHAR(64)  NOT NULL,
    description   VARCHAR(256) NOT NULL,
    price_fen     BIGINT       NOT NULL CHECK (price_fen > 0),
    stock         BIGINT       NOT NULL CHECK (stock >= 0),
    position      INT          NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE orders (
    id             VARCHAR(32)  NOT NULL PRIMARY KEY,
    session_id     VARCHAR(64)  NOT NULL,
    status         VARCHAR(16)  NOT NULL,
    total_fee      BIGINT       NOT NULL CHECK (total_fee > 0),
    body           VARCHAR(128) NOT NULL,
    created_at     BIGINT       NOT NULL,
    deadline_at    BIGINT       NOT NULL,
    code_url       VARCHAR(256),
    prepay_id      VARCHAR(64),
    transaction_id VARCHAR(32)  UNIQUE,
    paid_at        BIGINT,
    finished_at    BIGINT,
    failure_reason VARCHAR(32),
    -- When the reconciliation sweep looks at it next; NULL once finished or parked.
    next_check_at  BIGINT,
    check_attempts BIGINT       NOT NULL DEFAULT 0,
    parked_at      BIGINT,
    hidden_at      BIGINT,
    updated_at     BIGINT       NOT NULL,
    KEY orders_session (session_id, created_at),
    KEY orders_due (next_check_at),
    KEY orders_deadline (status, deadline_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE order_items (
    order_id       VARCHAR(32) NOT NULL,
    sku            VARCHAR(32) NOT NULL,
    name           VARCHAR(64) NOT NULL,
    unit_price_fen BIGINT      NOT NULL,
    qty            BIGINT      NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, sku)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE order_events (
    order_id VARCHAR(32)   NOT NULL,
    seq      BIGINT        NOT NULL,
    at       BIGINT        NOT NULL,
    kind     VARCHAR(32)   NOT NULL,
    cause    VARCHAR(16)   NOT NULL,
    detail   VARCHAR(1024) NOT NULL,
    PRIMARY KEY (order_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE pay_inbox (
    transaction_id  VARCHAR(32)  NOT NULL PRIMARY KEY,
    out_trade_no    VARCHAR(32)  NOT NULL,
    total_fee       BIGINT       NOT NULL,
    time_end        VARCHAR(14)  NOT NULL,
    paid_at         BIGINT       NOT NULL,
    received_at     BIGINT       NOT NULL,
    processed_at    BIGINT,
    outcome         VARCHAR(32),
    attempts        BIGINT       NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      VARCHAR(512),
    KEY pay_inbox_due (next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE anomalies (
    id             VARCHAR(32)   NOT NULL PRIMARY KEY,
    order_id       VARCHAR(32)   NOT NULL,
    transaction_id VARCHAR(32)   NOT NULL,
    kind           VARCHAR(32)   NOT NULL,
    detail         VARCHAR(1024) NOT NULL,
    at             BIGINT        NOT NULL,
    resolved_at    BIGINT,
    UNIQUE KEY anomalies_once (order_id, transaction_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE app_secrets (
    name       VARCHAR(32)  NOT NULL PRIMARY KEY,
    value      VARCHAR(128) NOT NULL,
    created_at BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
