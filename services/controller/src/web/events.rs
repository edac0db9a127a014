//! `GET /api/runs/ID/events`: server-sent events, a `progress` snapshot
//! about once a second, then one `end` with the final snapshot once the run
//! has ended. Each client has its own small buffer; a client that stops
//! reading is dropped, and every stream ends when the controller shuts down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Web;
use super::live::{self, LiveRun};
use super::reply::{self, Reply, WebError};

/// Events buffered per client.
const CLIENT_BUFFER: usize = 4;
/// A client that does not take an event within this time is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Between snapshots.
const PERIOD: Duration = Duration::from_secs(1);
/// A stream for a run the controller does not drive (taken over, or only
/// in the store) polls the collector at most this long.
const MAX_UNTRACKED: Duration = Duration::from_secs(6 * 3600);

pub(crate) async fn stream(web: &Arc<Web>, run_id: &str) -> Result<Reply, WebError> {
    // The first snapshot answers 404 for an unknown run before streaming.
    let first = live::snapshot(web, run_id).await?;
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(feed(web.clone(), run_id.to_owned(), first, tx));
    Ok(reply::streaming("text/event-stream", rx))
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

async fn feed(web: Arc<Web>, run_id: String, first: LiveRun, tx: mpsc::Sender<Bytes>) {
    let mut shutdown = web.shared.shutdown.clone();
    let mut status = web
        .shared
        .runs
        .get(&run_id)
        .map(|run| run.status.subscribe());
    let deadline = tokio::time::Instant::now() + MAX_UNTRACKED;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut snapshot = first;
    // False after a collector hiccup: nothing new to send (sending zeros
    // would make tables go backwards and charts dip).
    let mut fresh = true;
    loop {
        if snapshot.is_terminal() {
            let _ = send(&tx, event("end", &snapshot)).await;
            return;
        }
        if fresh && !send(&tx, event("progress", &snapshot)).await {
            return;
        }
        // Wake on the tick, or at once when the run changes state.
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
                    let terminal = status
                        .as_ref()
                        .is_some_and(|status| status.borrow().is_terminal());
                    if terminal {
                        break;
                    }
                }
                () = crate::shut_down(&mut shutdown) => return,
            }
        }
        // A run this controller drives ends its stream itself; one it does
        // not (only in the store) is polled for a bounded time.
        if status.is_none() && tokio::time::Instant::now() > deadline {
            return;
        }
        let result = tokio::select! {
            result = live::snapshot(&web, &run_id) => result,
            () = crate::shut_down(&mut shutdown) => return,
        };
        match result {
            Ok(next) => {
                snapshot = next;
                fresh = true;
            }
            Err(WebError::Collector(error) | WebError::Unavailable(error)) => {
                tracing::debug!(run_id, %error, "live stats unavailable; event skipped");
                fresh = false;
            }
            Err(error) => {
                tracing::debug!(run_id, %error, "event stream ends");
                return;
            }
        }
    }
}
