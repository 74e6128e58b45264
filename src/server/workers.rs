//! Background workers under supervision: each runs in its own task, a panic is logged and the
//! worker restarted with backoff, and its state is visible in `/readyz`. Shutdown asks every
//! worker to stop after its current item and waits for them, up to a bound.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A worker's view of shutdown. Workers check it between items, never in the middle of one.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A stop signal driven by hand (tests and tools): send `true` to stop.
    pub fn manual() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }
    /// Resolves once shutdown has begun.
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
    /// Sleeps for `d`, or less if shutdown begins; true when the worker should stop.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stopped() => {}
        }
        self.is_stopping()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    /// Crashed; restarting after a backoff.
    Restarting,
    Stopped,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerState {
    pub state: Phase,
    pub restarts: u32,
    /// The last panic's message, if any.
    pub last_panic: Option<String>,
}

pub struct Workers {
    states: Arc<Mutex<BTreeMap<&'static str, WorkerState>>>,
    stop_tx: watch::Sender<bool>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            states: Arc::default(),
            stop_tx: watch::channel(false).0,
            handles: Mutex::default(),
        }
    }
}

impl Workers {
    pub fn stop_handle(&self) -> Stop {
        Stop(self.stop_tx.subscribe())
    }

    /// Runs `make(stop)` as the worker `name`, again after every panic (backing off from 100 ms
    /// to 30 s), until shutdown.
    pub fn supervise<F, Fut>(&self, name: &'static str, make: F)
    where
        F: Fn(Stop) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let states = self.states.clone();
        let stop = self.stop_handle();
        let set = move |f: &dyn Fn(&mut WorkerState)| {
            let mut m = states.lock().unwrap();
            let s = m.entry(name).or_insert(WorkerState {
                state: Phase::Running,
                restarts: 0,
                last_panic: None,
            });
            f(s);
        };
        set(&|_| {});
        let handle = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                set(&|s| s.state = Phase::Running);
                let result = tokio::spawn(make(stop.clone())).await;
                if stop.is_stopping() {
                    set(&|s| s.state = Phase::Stopped);
                    return;
                }
                let why = match result {
                    Ok(()) => "returned before shutdown".to_string(),
                    Err(e) if e.is_panic() => panic_message(e.into_panic()),
                    Err(_) => return, // aborted: the process is going away
                };
                tracing::error!(
                    worker = name,
                    why,
                    restart_in_ms = backoff.as_millis() as u64,
                    "worker crashed; restarting"
                );
                set(&|s| {
                    s.state = Phase::Restarting;
                    s.restarts += 1;
                    s.last_panic = Some(why.clone());
                });
                let mut stop = stop.clone();
                if stop.sleep(backoff).await {
                    set(&|s| s.state = Phase::Stopped);
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
        self.handles.lock().unwrap().push(handle);
    }

    pub fn states(&self) -> BTreeMap<&'static str, WorkerState> {
        self.states.lock().unwrap().clone()
    }

    /// Every worker is running (none crashed and waiting to restart).
    pub fn all_running(&self) -> bool {
        self.states
            .lock()
            .unwrap()
            .values()
            .all(|s| s.state == Phase::Running)
    }

    /// Asks every worker to stop after its current item and waits up to `grace` for them; those
    /// still busy then are aborted. True when all stopped in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let _ = self.stop_tx.send(true);
        let handles: Vec<_> = std::mem::take(&mut *self.handles.lock().unwrap());
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        let all = futures::future::join_all(handles);
        match tokio::time::timeout(grace, all).await {
            Ok(_) => true,
            Err(_) => {
                for a in aborts {
                    a.abort();
                }
                false
            }
        }
    }

    /// Stops every worker at once (what a crash looks like to them).
    pub fn abort(&self) {
        let _ = self.stop_tx.send(true);
        for h in self.handles.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_panicking_worker_is_restarted_and_reported_and_shutdown_waits() {
        let workers = Workers::default();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        workers.supervise("flaky", move |stop| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("boom {n}");
                }
                stop.stopped().await;
            }
        });
        let start = std::time::Instant::now();
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(start.elapsed() < Duration::from_secs(5), "restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = &workers.states()["flaky"];
        assert_eq!((s.state.clone(), s.restarts), (Phase::Running, 2));
        assert_eq!(s.last_panic.as_deref(), Some("boom 1"));
        assert!(workers.all_running());
        assert!(workers.shutdown(Duration::from_secs(2)).await);
        assert_eq!(workers.states()["flaky"].state, Phase::Stopped);
    }

    #[tokio::test]
    async fn shutdown_is_bounded_for_a_worker_that_never_stops() {
        let workers = Workers::default();
        workers.supervise("stuck", |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let start = std::time::Instant::now();
        assert!(!workers.shutdown(Duration::from_millis(200)).await);
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
