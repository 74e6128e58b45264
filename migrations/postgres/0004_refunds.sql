-- Refunds (issue 16). A refund is written before WeChat is asked and never deleted; its
-- out_refund_no is made once and every retry sends it again with the same amounts.

CREATE TABLE refunds (
    out_refund_no  text   NOT NULL PRIMARY KEY,            -- ours: <order id>R<nn>
    order_id       text   NOT NULL,
    transaction_id text   NOT NULL,                        -- the payment refunded
    total_fee      bigint NOT NULL CHECK (total_fee > 0),  -- that payment's amount (sent as total_fee)
    refund_fee     bigint NOT NULL CHECK (refund_fee > 0),
    reason         text   NOT NULL,
    requested_by   text   NOT NULL,                        -- an operator's name, or 'system'
    restock        bigint NOT NULL DEFAULT 0,              -- 1: put the items back once fully refunded
    anomaly_id     text,                                   -- the anomaly this refund resolves
    status         text   NOT NULL CHECK (status IN ('requested', 'processing', 'success', 'closed', 'abnormal', 'failed')),
    refund_id      text,                                   -- WeChat's
    failure        text,                                   -- WeChat's refusal, or the last uncertain answer
    success_time   text,                                   -- WeChat's, Beijing yyyy-MM-dd HH:mm:ss
    recv_account   text,
    created_at     bigint NOT NULL,
    updated_at     bigint NOT NULL,
    finished_at    bigint,
    next_check_at  bigint,                                 -- NULL once final (or abnormal: a person acts)
    check_attempts bigint NOT NULL DEFAULT 0
);
CREATE INDEX refunds_order ON refunds (order_id, created_at);
CREATE INDEX refunds_anomaly ON refunds (anomaly_id) WHERE anomaly_id IS NOT NULL;
CREATE INDEX refunds_due ON refunds (next_check_at) WHERE next_check_at IS NOT NULL;

-- What WeChat has returned to the shopper, kept with the order for the shopper's views.
ALTER TABLE orders ADD COLUMN refunded_fee bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN restocked_at bigint;
-- How an anomaly was settled (e.g. the refund that returned the money).
ALTER TABLE anomalies ADD COLUMN resolution text;
