//! The order flows, and the steps they share. Who triggers what:
//!
//! ```text
//! flows    place (server fn) · cancel (server fn) · consume (bus) · sweep (job) · timeout (deadlines) · query (operator) · reconcile (job, CLI, operator)
//!             │                   │                    │               │             │
//! steps       qr ─────────────────┼────────────────────┼───────────────┤             │
//!             │                 close ◄────────────────┼───────────────┴─────────────┘
//!             ▼                   ▼                    ▼
//!          apply: every transition + the after-commit hook (status cache, due index)
//!             ▼
//!          decide: pure — WeChat's answer + the order → an Action
//! ```
//!
//! Flows sit beside each other and never call one another; steps call only what is below them.
//! The refund step (`refund`: record → ask WeChat → settle) stands just under the flows: the
//! operator endpoint, consume (automatic refunds), the sweep, the refund notify and the daily
//! reconciliation use it; the recheck step (orderquery → decide → apply) serves "Query WeChat
//! now" and the reconciliation.

pub mod apply;
pub mod cancel;
pub mod close;
pub mod consume;
pub mod decide;
pub mod place;
pub mod qr;
pub mod query;
pub mod recheck;
pub mod reconcile;
pub mod refund;
pub mod sweep;
pub mod timeout;
