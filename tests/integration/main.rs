//! Integration tests: the real app on a random port, spoken to over HTTP.

mod common;
mod console;
mod console_recon;
mod engines;
mod faults;
mod gateway;
mod hardening;
mod lifecycle;
mod model;
mod model_refunds;
mod mtls;
mod notify;
mod processes;
mod races;
mod reconcile;
mod refund_notifies;
mod refunds;
mod sandbox;
mod sandbox_bill;
mod sandbox_refunds;
mod seams;
mod server_fns;
mod shop;
mod v3;
