//! Supervision of the gateway's background tasks (key refresh, health probes, purge of
//! stored responses, budget alerts, fleet sync and notices). Each runs in its own tokio
//! task; one that panics or ends while the gateway is not stopping is logged, counted
//! (`llmux_background_task_restarts_total{task}`) and started again after a backoff
//! (100 ms, doubling to 10 s; back to 100 ms once a run lasted a minute). `/ready` shows
//! each task's state, and `degraded` while one is down.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// One supervised task's state.
#[derive(Debug)]
pub struct TaskState {
    pub name: &'static str,
    up: AtomicBool,
    restarts: AtomicU64,
}

impl TaskState {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

/// The supervised tasks of one gateway.
#[derive(Debug, Default)]
pub struct Tasks {
    tasks: Mutex<Vec<Arc<TaskState>>>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run this long resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

impl Tasks {
    /// Every task's state, in the order they were started.
    pub fn states(&self) -> Vec<Arc<TaskState>> {
        self.tasks.lock().clone()
    }

    /// Whether every task is running.
    pub fn all_up(&self) -> bool {
        self.tasks.lock().iter().all(|task| task.is_up())
    }

    /// `llmux_background_task_restarts_total{task}` (Prometheus text).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let tasks = self.states();
        if tasks.is_empty() {
            return;
        }
        out.push_str("# TYPE llmux_background_task_restarts_total counter\n");
        for task in tasks {
            let _ = writeln!(out, "llmux_background_task_restarts_total{{task=\"{}\"}} {}", task.name, task.restarts());
        }
    }

    /// Runs `make()`'s future as task `name`, again whenever it panics or ends, until
    /// `stop` turns true (or its sender is gone) or `make` returns `None` (what the task
    /// serves is gone).
    pub fn supervise<F, Fut>(self: &Arc<Self>, name: &'static str, mut stop: watch::Receiver<bool>, mut make: F)
    where
        F: FnMut() -> Option<Fut> + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let state = Arc::new(TaskState { name, up: AtomicBool::new(true), restarts: AtomicU64::new(0) });
        self.tasks.lock().push(state.clone());
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let Some(run) = make() else { return };
                let started = tokio::time::Instant::now();
                state.up.store(true, Ordering::Relaxed);
                let ended = tokio::spawn(run).await;
                if *stop.borrow() || stop.has_changed().is_err() {
                    return;
                }
                state.up.store(false, Ordering::Relaxed);
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = FIRST_BACKOFF;
                }
                match ended {
                    Err(error) if error.is_panic() => {
                        let panic = error.into_panic();
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|text| (*text).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(task = name, panic = %message, backoff_ms = backoff.as_millis() as u64, "Background task panicked; restarting it.");
                    }
                    _ => {
                        tracing::error!(
                            task = name,
                            backoff_ms = backoff.as_millis() as u64,
                            "Background task ended unexpectedly; restarting it."
                        );
                    }
                }
                state.restarts.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::Tasks;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_shown_down_meanwhile() {
        let tasks = Arc::new(Tasks::default());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let counted = runs.clone();
        tasks.supervise("flaky", stop_rx, move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            let mut released = released.clone();
            Some(async move {
                if run == 0 {
                    // The first run waits for the test, then dies.
                    let _ = released.wait_for(|go| *go).await;
                    panic!("injected failure");
                }
                std::future::pending::<()>().await;
            })
        });
        tokio::task::yield_now().await;
        assert!(tasks.all_up());
        release.send(true).unwrap();
        // Down between the panic and the restart (100 ms backoff).
        let mut saw_down = false;
        for _ in 0..200 {
            if !tasks.all_up() {
                saw_down = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(saw_down, "the dead task is shown down");
        for _ in 0..200 {
            if runs.load(Ordering::SeqCst) == 2 && tasks.all_up() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "restarted once");
        assert!(tasks.all_up());
        let states = tasks.states();
        assert_eq!((states[0].name, states[0].restarts()), ("flaky", 1));
        let mut text = String::new();
        tasks.render(&mut text);
        assert!(text.contains("llmux_background_task_restarts_total{task=\"flaky\"} 1"), "{text}");
        stop.send(true).unwrap();
    }

    #[tokio::test]
    async fn a_task_whose_gateway_is_gone_is_not_restarted() {
        let tasks = Arc::new(Tasks::default());
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        tasks.supervise("once", stop_rx, move || (counted.fetch_add(1, Ordering::SeqCst) == 0).then_some(async {}));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "ran once, then `make` said the gateway is gone");
        assert_eq!(tasks.states()[0].restarts(), 1);
    }
}
