//! The operations log: every call scanpay makes to WeChat Pay for an order (API, result, latency;
//! recorded by the client, never a key or a signature) and every notify it receives (verified or
//! refused, and why), as the console's order page shows them. Written off the hot path: entries
//! go into a bounded queue and one task writes them in batches, so a notify or a checkout never
//! waits for this log; when the queue is full an entry is dropped and counted
//! (`scanpay_oplog_dropped_total`), never the work it describes.

use tokio::sync::mpsc;

use crate::server::domain::{CallRow, NotifyRow};
use crate::server::store::Store;

/// Entries waiting to be written, at most.
const QUEUE: usize = 10_000;
/// Entries written in one transaction, at most.
const BATCH: usize = 500;

pub enum Entry {
    Call(CallRow),
    Notify(NotifyRow),
}

/// Where entries go; cheap to clone. A disabled log (tools, unit tests) drops them.
#[derive(Clone, Default)]
pub struct OpLog {
    tx: Option<mpsc::Sender<Entry>>,
}

impl OpLog {
    /// Starts the writer on this runtime; it ends when the last `OpLog` is dropped, after
    /// writing what is queued.
    pub fn start(store: Store) -> OpLog {
        if tokio::runtime::Handle::try_current().is_err() {
            return OpLog::default();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx));
        OpLog { tx: Some(tx) }
    }

    pub fn record(&self, e: Entry) {
        if let Some(tx) = &self.tx {
            if tx.try_send(e).is_err() {
                metrics::counter!("scanpay_oplog_dropped_total").increment(1);
            }
        }
    }
}

async fn write(store: Store, mut rx: mpsc::Receiver<Entry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (mut calls, mut notifies) = (Vec::new(), Vec::new());
        for e in batch.drain(..) {
            match e {
                Entry::Call(c) => calls.push(c),
                Entry::Notify(n) => notifies.push(n),
            }
        }
        // One retry after a pause: a database blip should not cost the log.
        for attempt in 0..2 {
            match store.write_oplog(&calls, &notifies).await {
                Ok(()) => break,
                Err(e) if attempt == 0 => {
                    tracing::warn!(error = %e, "operations log not written; trying once more");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => {
                    // One at a time, so one bad entry costs only itself.
                    tracing::warn!(error = %e, "operations log batch refused; writing its entries one by one");
                    let mut lost = 0u64;
                    for c in &calls {
                        lost += u64::from(
                            store
                                .write_oplog(std::slice::from_ref(c), &[])
                                .await
                                .is_err(),
                        );
                    }
                    for n in &notifies {
                        lost += u64::from(
                            store
                                .write_oplog(&[], std::slice::from_ref(n))
                                .await
                                .is_err(),
                        );
                    }
                    if lost > 0 {
                        tracing::error!(entries = lost, "operations log entries lost");
                        metrics::counter!("scanpay_oplog_dropped_total").increment(lost);
                    }
                }
            }
        }
    }
}
