//! Everything that runs only on the server. Layers, top to bottom (a module imports only its own
//! layer and those below; `tests/layers.rs` holds it — see docs/ARCHITECTURE.md):
//!
//! 1. wiring: `cli`, `startup`, `http` (router, notify, probes, operator endpoints)
//! 2. flows: `orders` (place, cancel, consume, sweep, timeout over the steps qr, close, apply,
//!    decide), `state` (`Ctx`: the seams the flows see)
//! 3. seams: `store`, `bus`, `schedule`, `cache`, `wxpay`, with `amqp` and `redis_conn` under
//!    them; `sandbox`, `config`, `jobs`, `qr`
//! 4. helpers: `domain`, `support` (and `app::types`, shared with the browser)

pub mod amqp;
pub mod bus;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod oplog;
pub mod orders;
pub mod qr;
pub mod redis_conn;
pub mod sandbox;
pub mod schedule;
pub mod startup;
pub mod state;
pub mod store;
pub mod support;
pub mod wxpay;

pub use cli::run;
pub use startup::{start, Running, StartError};
pub use state::{AppState, Ctx};
