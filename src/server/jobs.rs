//! Background jobs under supervision (tokio-util's `CancellationToken` + `TaskTracker`): each job
//! runs in one tracked task whose restart loop catches a panic around the job's future (no
//! nested spawn), so aborting the task really stops the job's work. A crashed job is restarted
//! with backoff and its state is visible in `/readyz`. Shutdown cancels every job's token, waits
//! up to the grace period, then aborts what is still running.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::support::backoff::Backoff;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    /// Crashed; restarting after a backoff.
    Restarting,
    Stopped,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct JobState {
    pub state: Phase,
    pub restarts: u32,
    /// The last panic's message, if any.
    pub last_panic: Option<String>,
}

#[derive(Default)]
pub struct Jobs {
    states: Arc<Mutex<BTreeMap<&'static str, JobState>>>,
    token: CancellationToken,
    tracker: TaskTracker,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Jobs {
    /// The token every job's own is a child of: cancelled at shutdown.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Runs `make(token)` as the job `name`, again after every panic or early return (backing
    /// off from 100 ms to 30 s), until shutdown.
    pub fn supervise<F, Fut>(&self, name: &'static str, make: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let states = self.states.clone();
        let token = self.token.child_token();
        let set = move |f: &dyn Fn(&mut JobState)| {
            let mut m = states.lock().unwrap();
            let s = m.entry(name).or_insert(JobState {
                state: Phase::Running,
                restarts: 0,
                last_panic: None,
            });
            f(s);
        };
        set(&|_| {});
        let handle = self.tracker.spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
            loop {
                set(&|s| s.state = Phase::Running);
                let result = AssertUnwindSafe(make(token.clone())).catch_unwind().await;
                if token.is_cancelled() {
                    set(&|s| s.state = Phase::Stopped);
                    return;
                }
                let why = match result {
                    Ok(()) => "returned before shutdown".to_string(),
                    Err(p) => panic_message(p),
                };
                let wait = backoff.next_wait();
                tracing::error!(
                    job = name,
                    why,
                    restart_in_ms = wait.as_millis() as u64,
                    "job crashed; restarting"
                );
                set(&|s| {
                    s.state = Phase::Restarting;
                    s.restarts += 1;
                    s.last_panic = Some(why.clone());
                });
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = token.cancelled() => {
                        set(&|s| s.state = Phase::Stopped);
                        return;
                    }
                }
            }
        });
        self.handles.lock().unwrap().push(handle);
    }

    pub fn states(&self) -> BTreeMap<&'static str, JobState> {
        self.states.lock().unwrap().clone()
    }

    /// Every job is running (none crashed and waiting to restart).
    pub fn all_running(&self) -> bool {
        self.states
            .lock()
            .unwrap()
            .values()
            .all(|s| s.state == Phase::Running)
    }

    /// Asks every job to stop after its current item and waits up to `grace` for them; those
    /// still busy then are aborted. True when all stopped in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        self.abort();
        false
    }

    /// Stops every job at once, wherever it is (what a crash looks like to them).
    pub fn abort(&self) {
        self.token.cancel();
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
    async fn a_panicking_job_is_restarted_and_reported_and_shutdown_waits() {
        let jobs = Jobs::default();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        jobs.supervise("flaky", move |token| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("boom {n}");
                }
                token.cancelled().await;
            }
        });
        let start = std::time::Instant::now();
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(start.elapsed() < Duration::from_secs(5), "restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = &jobs.states()["flaky"];
        assert_eq!((s.state.clone(), s.restarts), (Phase::Running, 2));
        assert_eq!(s.last_panic.as_deref(), Some("boom 1"));
        assert!(jobs.all_running());
        assert!(jobs.shutdown(Duration::from_secs(2)).await);
        assert_eq!(jobs.states()["flaky"].state, Phase::Stopped);
    }

    #[tokio::test]
    async fn shutdown_is_bounded_for_a_job_that_never_stops() {
        let jobs = Jobs::default();
        jobs.supervise("stuck", |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let start = std::time::Instant::now();
        assert!(!jobs.shutdown(Duration::from_millis(200)).await);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    /// Aborting stops the job's own work, not just a task around it (the work used to run in a
    /// nested spawn that kept calling WeChat after an abort).
    #[tokio::test]
    async fn abort_stops_the_work_itself() {
        let jobs = Jobs::default();
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        jobs.supervise("busy", move |_token| {
            let t = t.clone();
            async move {
                loop {
                    t.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        jobs.abort();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after,
            "nothing runs after the abort"
        );
    }
}
