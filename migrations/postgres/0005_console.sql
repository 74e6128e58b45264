-- The operator console (issue 17): operators, their sessions, and the audit log of everything
-- they do. Operator names are lowercase ASCII (parsed at the edge), so every engine compares
-- them alike.

CREATE TABLE operators (
    name          VARCHAR(64)  NOT NULL PRIMARY KEY,
    role          VARCHAR(16)  NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash VARCHAR(256) NOT NULL,                   -- argon2id PHC string
    created_at    BIGINT       NOT NULL,
    updated_at    BIGINT       NOT NULL,
    disabled_at   BIGINT,
    totp_secret   VARCHAR(64),                             -- base32; NULL = no second factor
    totp_pending  VARCHAR(64),                             -- set up, not yet confirmed by a code
    totp_last_step BIGINT                                  -- a code's time step is used once
);

-- The second factor's recovery codes: each used once, kept only as its SHA-256.
CREATE TABLE operator_recovery_codes (
    operator  VARCHAR(64) NOT NULL,
    code_hash CHAR(64)    NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (operator, code_hash)
);

-- Kept server-side so any number of web processes share them. The cookie carries a random id;
-- only its SHA-256 is stored, so a copy of this table opens no session.
CREATE TABLE ops_sessions (
    id_hash    CHAR(64)    NOT NULL PRIMARY KEY,
    operator   VARCHAR(64) NOT NULL,
    created_at BIGINT      NOT NULL,
    seen_at    BIGINT      NOT NULL,                       -- the idle time-out counts from here
    authed_at  BIGINT      NOT NULL,                       -- the last password entered (refunds want it recent)
    expires_at BIGINT      NOT NULL,                       -- the absolute time-out
    address    VARCHAR(64) NOT NULL DEFAULT ''
);
CREATE INDEX ops_sessions_operator ON ops_sessions (operator);
CREATE INDEX ops_sessions_expiry ON ops_sessions (expires_at);

-- Append-only: who did what, when, from where, and why. Failed sign-ins are rows here too, and
-- the sign-in limit counts them.
CREATE TABLE ops_audit (
    id      BIGSERIAL     PRIMARY KEY,
    at      BIGINT        NOT NULL,
    actor   VARCHAR(64)   NOT NULL,                        -- an operator, 'ops-token', or the name tried
    action  VARCHAR(32)   NOT NULL,
    subject VARCHAR(128)  NOT NULL DEFAULT '',             -- an order, a refund, an operator
    address VARCHAR(64)   NOT NULL DEFAULT '',
    reason  VARCHAR(512)  NOT NULL DEFAULT '',
    detail  VARCHAR(1024) NOT NULL DEFAULT ''
);
CREATE INDEX ops_audit_actor ON ops_audit (action, actor, at);
CREATE INDEX ops_audit_address ON ops_audit (action, address, at);
CREATE INDEX ops_audit_subject ON ops_audit (subject, at);

-- The console's orders list: newest first, paged by (created_at, id).
CREATE INDEX orders_created ON orders (created_at, id);
-- The overview's and /metrics' counts: paid today, unfinished now, refunds finished today.
CREATE INDEX orders_paid ON orders (paid_at);
CREATE INDEX orders_status ON orders (status, created_at);
CREATE INDEX refunds_finished ON refunds (finished_at);

-- The operations log (`server::oplog`): every call made to WeChat Pay for an order, as the
-- client saw it (never a key or a signature), and every notify received with its verdict.
CREATE TABLE wxpay_calls (
    id         BIGSERIAL   PRIMARY KEY,
    at         BIGINT      NOT NULL,
    order_id   VARCHAR(32) NOT NULL,
    api        VARCHAR(32) NOT NULL,                       -- unifiedorder, orderquery, refund, …
    result     VARCHAR(64) NOT NULL,                       -- success, an err_code, transport, …
    latency_ms BIGINT      NOT NULL
);
CREATE INDEX wxpay_calls_order ON wxpay_calls (order_id, at);

CREATE TABLE notify_log (
    id        BIGSERIAL   PRIMARY KEY,
    at        BIGINT       NOT NULL,
    kind      VARCHAR(16)  NOT NULL,                       -- pay | refund
    order_id  VARCHAR(64)  NOT NULL DEFAULT '',            -- as the notify names it (verified or not)
    reference VARCHAR(64)  NOT NULL DEFAULT '',            -- its transaction_id or out_refund_no
    outcome   VARCHAR(32)  NOT NULL,                       -- accepted, refused_sign, …
    reason    VARCHAR(256) NOT NULL DEFAULT ''
);
CREATE INDEX notify_log_order ON notify_log (order_id, at);
