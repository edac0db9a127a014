//! `GET /api/runs/ID/events`: server-sent events, a `progress` snapshot
//! about once a second, then one `end` with the final snapshot once the run
//! has ended.
//!
//! One producer task per run takes the snapshots (one collector call a
//! second however many viewers watch) and publishes them on a `watch`
//! channel; each client's task forwards the latest to its own small buffer.
//! A client that stops reading is dropped; the producer ends when its last
//! viewer leaves, when the run has ended, or at shutdown, and every stream
//! ends with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::Web;
use super::live::{self, LiveRun};
use super::reply::{self, Reply, WebError};

/// Events buffered per client.
const CLIENT_BUFFER: usize = 4;
/// A client that does not take an event within this time is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Between snapshots.
const PERIOD: Duration = Duration::from_secs(1);
/// A run the controller does not drive (taken over, or only in the store)
/// is polled at most this long per producer.
const MAX_UNTRACKED: Duration = Duration::from_secs(6 * 3600);

/// The producers of the runs being watched, by run id.
#[derive(Default)]
pub(crate) struct Feeds {
    runs: Mutex<HashMap<String, watch::Receiver<Arc<LiveRun>>>>,
}

pub(crate) async fn stream(web: &Arc<Web>, run_id: &str) -> Result<Reply, WebError> {
    // The first snapshot answers 404 for an unknown run before streaming.
    let first = live::snapshot(web, run_id).await?;
    let updates = subscribe(web, run_id, first);
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(forward(web.clone(), updates, tx));
    Ok(reply::streaming("text/event-stream", rx))
}

/// The run's producer, started with `first` when nobody watches it yet.
fn subscribe(web: &Arc<Web>, run_id: &str, first: LiveRun) -> watch::Receiver<Arc<LiveRun>> {
    let mut runs = web.feeds.runs.lock();
    if let Some(updates) = runs.get(run_id)
        && updates.has_changed().is_ok()
    {
        return updates.clone();
    }
    let (tx, rx) = watch::channel(Arc::new(first));
    runs.insert(run_id.to_owned(), rx.clone());
    tokio::spawn(produce(web.clone(), run_id.to_owned(), tx));
    rx
}

fn event(name: &str, run: &LiveRun) -> Bytes {
    let data = serde_json::to_string(run).unwrap_or_else(|error| {
        serde_json::json!({ "error": format!("failed to encode: {error}") }).to_string()
    });
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

async fn send(tx: &mpsc::Sender<Bytes>, chunk: Bytes) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}

/// One client: the latest snapshot each time the producer publishes one.
async fn forward(
    web: Arc<Web>,
    mut updates: watch::Receiver<Arc<LiveRun>>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut shutdown = web.shared.shutdown.clone();
    loop {
        let snapshot = updates.borrow_and_update().clone();
        if snapshot.is_terminal() {
            let _ = send(&tx, event("end", &snapshot)).await;
            return;
        }
        if !send(&tx, event("progress", &snapshot)).await {
            return;
        }
        tokio::select! {
            changed = updates.changed() => if changed.is_err() {
                // The producer ended: publish what it left if it is final.
                let last = updates.borrow().clone();
                if last.is_terminal() {
                    let _ = send(&tx, event("end", &last)).await;
                }
                return;
            },
            () = crate::shut_down(&mut shutdown) => return,
        }
    }
}

/// Takes a snapshot each second (at once when the run ends) while anyone
/// watches, and publishes it.
async fn produce(web: Arc<Web>, run_id: String, tx: watch::Sender<Arc<LiveRun>>) {
    let mut shutdown = web.shared.shutdown.clone();
    let mut status = web
        .shared
        .runs
        .get(&run_id)
        .map(|run| run.status.subscribe());
    let deadline = tokio::time::Instant::now() + MAX_UNTRACKED;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if tx.borrow().is_terminal() {
            break;
        }
        // Wake on the tick, or at once when the run ends.
        loop {
            let changed = async {
                match status.as_mut() {
                    Some(status) => status.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ticker.tick() => break,
                alive = changed => {
                    if !alive {
                        status = None;
                    }
                    if status.as_ref().is_some_and(|status| status.borrow().is_terminal()) {
                        break;
                    }
                }
                () = crate::shut_down(&mut shutdown) => return forget(&web, &run_id, &tx),
            }
        }
        if leave_if_unwatched(&web, &run_id, &tx) {
            return;
        }
        // A run this controller drives ends by itself; one it does not
        // (only in the store) is polled for a bounded time.
        if status.is_none() && tokio::time::Instant::now() > deadline {
            break;
        }
        let result = tokio::select! {
            result = live::snapshot(&web, &run_id) => result,
            () = crate::shut_down(&mut shutdown) => return forget(&web, &run_id, &tx),
        };
        match result {
            Ok(next) => {
                tx.send_replace(Arc::new(next));
            }
            // Sending zeros would make tables go backwards and charts dip:
            // the second is skipped.
            Err(WebError::Collector(error) | WebError::Unavailable(error)) => {
                tracing::debug!(run_id, %error, "live stats unavailable; event skipped");
            }
            Err(error) => {
                tracing::debug!(run_id, %error, "event stream ends");
                break;
            }
        }
    }
    forget(&web, &run_id, &tx);
}

/// Ends the producer when only the map's own receiver is left; under the
/// map's lock, so no viewer subscribes in between.
fn leave_if_unwatched(web: &Web, run_id: &str, tx: &watch::Sender<Arc<LiveRun>>) -> bool {
    let mut runs = web.feeds.runs.lock();
    if tx.receiver_count() > 1 {
        return false;
    }
    remove_own(&mut runs, run_id, tx);
    true
}

fn remove_own(
    runs: &mut HashMap<String, watch::Receiver<Arc<LiveRun>>>,
    run_id: &str,
    tx: &watch::Sender<Arc<LiveRun>>,
) {
    if runs
        .get(run_id)
        .is_some_and(|updates| updates.same_channel(&tx.subscribe()))
    {
        runs.remove(run_id);
    }
}

/// Removes the run's entry if it is still this producer's; dropping the
/// sender then ends every client's stream.
fn forget(web: &Web, run_id: &str, tx: &watch::Sender<Arc<LiveRun>>) {
    remove_own(&mut web.feeds.runs.lock(), run_id, tx);
}
