-- Refunds (issue 16). A refund is written before WeChat is asked and never deleted; its
-- out_refund_no is made once and every retry sends it again with the same amounts.

CREATE TABLE refunds (
    out_refund_no  VARCHAR(64)   NOT NULL PRIMARY KEY,     -- ours: <order id>R<nn>
    order_id       VARCHAR(32)   NOT NULL,
    transaction_id VARCHAR(32)   NOT NULL,                 -- the payment refunded
    total_fee      BIGINT        NOT NULL CHECK (total_fee > 0),
    refund_fee     BIGINT        NOT NULL CHECK (refund_fee > 0),
    reason         VARCHAR(256)  NOT NULL,
    requested_by   VARCHAR(64)   NOT NULL,                 -- an operator's name, or 'system'
    restock        BIGINT        NOT NULL DEFAULT 0,
    anomaly_id     VARCHAR(32),                            -- the anomaly this refund resolves
    status         VARCHAR(16)   NOT NULL CHECK (status IN ('requested', 'processing', 'success', 'closed', 'abnormal', 'failed')),
    refund_id      VARCHAR(64),
    failure        VARCHAR(512),
    success_time   VARCHAR(32),
    recv_account   VARCHAR(128),
    created_at     BIGINT        NOT NULL,
    updated_at     BIGINT        NOT NULL,
    finished_at    BIGINT,
    next_check_at  BIGINT,
    check_attempts BIGINT        NOT NULL DEFAULT 0
);
CREATE INDEX refunds_order ON refunds (order_id, created_at);
CREATE INDEX refunds_anomaly ON refunds (anomaly_id) WHERE anomaly_id IS NOT NULL;
CREATE INDEX refunds_due ON refunds (next_check_at) WHERE next_check_at IS NOT NULL;

ALTER TABLE orders ADD COLUMN refunded_fee BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN restocked_at BIGINT;
ALTER TABLE anomalies ADD COLUMN resolution VARCHAR(256);
