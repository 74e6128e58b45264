-- The daily reconciliation against WeChat's trade bill (issue 18). A day is claimed in SQL, so
-- one process runs it however many workers there are; a run replaces the day's lines in one
-- transaction (an operator's resolution of a difference that is still there is kept).

CREATE TABLE recon_days (
    bill_date           VARCHAR(10)  NOT NULL PRIMARY KEY,    -- Beijing YYYY-MM-DD
    status              VARCHAR(16)  NOT NULL,                -- due | running | done
    run_id              VARCHAR(32),                          -- the claim of the run in progress
    attempts            BIGINT       NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT,                               -- due: not before this
    lease_until         BIGINT,                               -- running: another may take it after this
    last_error          VARCHAR(512),
    bill                VARCHAR(16),                          -- bill | no_bill, once done
    raw_gzip            LONGBLOB,                              -- WeChat's file (its text), gzipped
    raw_sha256          CHAR(64),                             -- of the bill's text
    wechat_rows         BIGINT       NOT NULL DEFAULT 0,      -- the bill's summary line
    wechat_settlement_fen BIGINT     NOT NULL DEFAULT 0,
    wechat_refund_fen   BIGINT       NOT NULL DEFAULT 0,
    wechat_fee_millifen BIGINT       NOT NULL DEFAULT 0,
    wechat_order_fen    BIGINT,
    local_paid_count    BIGINT       NOT NULL DEFAULT 0,      -- what scanpay holds for the day
    local_paid_fen      BIGINT       NOT NULL DEFAULT 0,
    local_refund_count  BIGINT       NOT NULL DEFAULT 0,
    local_refund_fen    BIGINT       NOT NULL DEFAULT 0,
    n_matched           BIGINT       NOT NULL DEFAULT 0,      -- lines per class
    n_wechat_only       BIGINT       NOT NULL DEFAULT 0,
    n_local_only        BIGINT       NOT NULL DEFAULT 0,
    n_amount_differs    BIGINT       NOT NULL DEFAULT 0,
    n_refund_differs    BIGINT       NOT NULL DEFAULT 0,
    n_open              BIGINT       NOT NULL DEFAULT 0,      -- differences not resolved
    started_at          BIGINT,
    finished_at         BIGINT,
    run_by              VARCHAR(64),                          -- schedule, cli, or an operator
    created_at          BIGINT       NOT NULL,
    updated_at          BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX recon_days_due ON recon_days (status, next_attempt_at);

-- One line per payment or refund on either side: the bill's rows (WeChat's figures) beside ours.
CREATE TABLE recon_lines (
    bill_date      VARCHAR(10)  NOT NULL,
    line_key       VARCHAR(100) NOT NULL,                     -- P:<transaction id> | R:<out_refund_no>
    kind           VARCHAR(8)   NOT NULL,                     -- payment | refund
    class          VARCHAR(16)  NOT NULL,                     -- matched | wechat_only | local_only | amount_differs | refund_differs
    out_trade_no   VARCHAR(64)  NOT NULL DEFAULT '',
    transaction_id VARCHAR(64)  NOT NULL DEFAULT '',
    out_refund_no  VARCHAR(64)  NOT NULL DEFAULT '',
    trade_time     VARCHAR(19)  NOT NULL DEFAULT '',          -- Beijing yyyy-MM-dd HH:mm:ss
    wechat_fen     BIGINT,
    local_fen      BIGINT,
    wechat_state   VARCHAR(32)  NOT NULL DEFAULT '',
    local_state    VARCHAR(32)  NOT NULL DEFAULT '',
    fee_millifen   BIGINT       NOT NULL DEFAULT 0,
    note           VARCHAR(512) NOT NULL DEFAULT '',
    resolved_at    BIGINT,
    resolved_by    VARCHAR(64),
    resolution     VARCHAR(512),
    PRIMARY KEY (bill_date, line_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- The differences (/metrics, the overview, an order's page); MySQL has no partial indexes.
CREATE INDEX recon_lines_open ON recon_lines (class, resolved_at);
CREATE INDEX recon_lines_order ON recon_lines (out_trade_no);

-- Payments the bill names that no order holds, looked up among the anomalies.
CREATE INDEX anomalies_transaction ON anomalies (transaction_id);

-- The day's refunds, by when they were recorded.
CREATE INDEX refunds_created ON refunds (created_at);
