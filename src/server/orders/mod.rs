//! Orders: the state machine (`state`) and the flows that drive it.

pub mod close;
pub mod consumer;
pub mod place;
pub mod reconcile;
pub mod state;
pub mod sweep;
pub mod timeout;
