//! Exact request counters: one atomic per route, no lock on the request path.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::route::Route;

/// One counter per cache line, so threads bumping different routes do not
/// contend on the same line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

impl Counter {
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// The target's request counters.
///
/// A request is counted when its response is produced, after the injected
/// latency; a request whose future is dropped before that (the client closed
/// the connection mid-sleep) is counted as `cancelled` instead, because no
/// client received an answer for it.
#[derive(Debug, Default)]
pub struct Stats {
    served: [Counter; Route::COUNT],
    unmatched: Counter,
    errors: Counter,
    bad_requests: Counter,
    cancelled: Counter,
    /// Requests that came over HTTP/2 (the others over HTTP/1.x).
    http2: Counter,
    tls_handshakes: Counter,
    tls_failures: Counter,
    /// The leaf certificates (DER) clients presented in completed TLS
    /// handshakes, so a test can check that each user brought its own.
    client_certs: Mutex<HashSet<Box<[u8]>>>,
    /// The `deviceid`s of successful logins, so a test can check that each
    /// device logged in once (test data handed out uniquely).
    logins: Mutex<Logins>,
}

/// Most device ids remembered; logins beyond are counted as untracked.
const MAX_TRACKED_DEVICES: usize = 1_000_000;

#[derive(Debug, Default)]
struct Logins {
    devices: HashSet<Box<[u8]>>,
    repeats: u64,
    untracked: u64,
}

/// How a counted request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The route's normal answer.
    Ok,
    /// An injected `500`.
    Error,
    /// A `400`, `401` or `413`: the request was invalid (or not allowed).
    BadRequest,
}

/// A request between arrival and response; counts itself as cancelled if
/// dropped before [`InFlight::finish`].
#[derive(Debug)]
pub struct InFlight<'a> {
    stats: &'a Stats,
    finished: bool,
}

impl InFlight<'_> {
    /// Counts the request as served on `route` with `outcome`.
    pub fn finish(mut self, route: Route, outcome: Outcome) {
        self.finished = true;
        self.stats.served[route.index()].bump();
        match outcome {
            Outcome::Ok => {}
            Outcome::Error => self.stats.errors.bump(),
            Outcome::BadRequest => self.stats.bad_requests.bump(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.cancelled.bump();
        }
    }
}

/// The counters at one moment, as `GET /stats` returns them.
///
/// `total` is the sum of `paths` plus `unmatched`; `errors` and `bad_requests`
/// are included in `paths`; `cancelled` requests are in none of the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Every response produced (counted routes and 404/405).
    pub total: u64,
    /// Responses per route, keyed `METHOD /path`; every route is present.
    pub paths: BTreeMap<String, u64>,
    /// Responses to requests matching no route (404 or 405).
    pub unmatched: u64,
    /// Injected `500` responses.
    pub errors: u64,
    /// `400`/`413` responses to invalid requests.
    pub bad_requests: u64,
    /// Requests dropped before their response was produced.
    pub cancelled: u64,
    /// Requests on a route that came over HTTP/2 (the rest of `total`
    /// minus `unmatched` came over HTTP/1.x).
    #[serde(default)]
    pub http2: u64,
    /// Distinct `deviceid`s of successful `POST /login`s.
    #[serde(default)]
    pub login_devices: u64,
    /// Successful logins of a device that had logged in before.
    #[serde(default)]
    pub login_repeats: u64,
    /// Logins not checked for repeats (over a million distinct devices).
    #[serde(default)]
    pub login_untracked: u64,
    /// TLS handshakes completed (with `--tls-cert`).
    #[serde(default)]
    pub tls_handshakes: u64,
    /// TLS handshakes that failed (a client that did not trust the
    /// server, or brought no or a bad client certificate).
    #[serde(default)]
    pub tls_failures: u64,
    /// Distinct client certificates presented in completed handshakes.
    #[serde(default)]
    pub tls_client_certs: u64,
}

impl Stats {
    /// Marks the arrival of a request on a route.
    pub fn begin(&self) -> InFlight<'_> {
        InFlight {
            stats: self,
            finished: false,
        }
    }

    /// Counts a request that matched no route.
    pub fn unmatched(&self) {
        self.unmatched.bump();
    }

    /// Counts a routed request that came over HTTP/2.
    pub fn http2(&self) {
        self.http2.bump();
    }

    /// Counts a completed TLS handshake and remembers its client
    /// certificate (its leaf), if it presented one.
    pub fn tls_handshake(&self, certs: Option<&[rustls::pki_types::CertificateDer<'_>]>) {
        self.tls_handshakes.bump();
        if let Some(leaf) = certs.and_then(<[_]>::first) {
            let mut seen = self.client_certs.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() < MAX_TRACKED_DEVICES {
                seen.insert(leaf.as_ref().into());
            }
        }
    }

    /// Counts a failed TLS handshake.
    pub fn tls_failure(&self) {
        self.tls_failures.bump();
    }

    /// Remembers a successful login of `device`.
    pub fn login(&self, device: &[u8]) {
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        if logins.devices.contains(device) {
            logins.repeats += 1;
        } else if logins.devices.len() < MAX_TRACKED_DEVICES {
            logins.devices.insert(device.into());
        } else {
            logins.untracked += 1;
        }
    }

    /// Sets every counter to zero. Requests in flight during the reset are
    /// counted after it if their response is produced after it.
    pub fn reset(&self) {
        self.served.iter().for_each(Counter::reset);
        for counter in [
            &self.unmatched,
            &self.errors,
            &self.bad_requests,
            &self.cancelled,
            &self.http2,
            &self.tls_handshakes,
            &self.tls_failures,
        ] {
            counter.reset();
        }
        *self.logins.lock().unwrap_or_else(|e| e.into_inner()) = Logins::default();
        self.client_certs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let paths: BTreeMap<String, u64> = Route::ALL
            .into_iter()
            .map(|route| (route.name().to_owned(), self.served[route.index()].get()))
            .collect();
        let unmatched = self.unmatched.get();
        let logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        StatsSnapshot {
            http2: self.http2.get(),
            login_devices: logins.devices.len() as u64,
            login_repeats: logins.repeats,
            login_untracked: logins.untracked,
            tls_handshakes: self.tls_handshakes.get(),
            tls_failures: self.tls_failures.get(),
            tls_client_certs: self
                .client_certs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len() as u64,
            total: paths.values().sum::<u64>() + unmatched,
            paths,
            unmatched,
            errors: self.errors.get(),
            bad_requests: self.bad_requests.get(),
            cancelled: self.cancelled.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_finished_and_cancelled() {
        let stats = Stats::default();
        stats.begin().finish(Route::Login, Outcome::Ok);
        stats.begin().finish(Route::Login, Outcome::BadRequest);
        stats.begin().finish(Route::TestV1, Outcome::Error);
        drop(stats.begin());
        stats.unmatched();
        let snap = stats.snapshot();
        assert_eq!(snap.total, 4);
        assert_eq!(snap.paths["POST /login"], 2);
        assert_eq!(snap.paths["GET /Test/V1"], 1);
        assert_eq!(snap.paths["GET /health"], 0);
        assert_eq!(snap.paths.len(), Route::COUNT);
        assert_eq!((snap.unmatched, snap.errors, snap.bad_requests), (1, 1, 1));
        assert_eq!(snap.cancelled, 1);
        stats.login(b"d1");
        stats.login(b"d2");
        stats.login(b"d1");
        let snap = stats.snapshot();
        assert_eq!((snap.login_devices, snap.login_repeats), (2, 1));
        stats.reset();
        let snap = stats.snapshot();
        assert_eq!((snap.total, snap.cancelled, snap.errors), (0, 0, 0));
        assert_eq!((snap.login_devices, snap.login_repeats), (0, 0));
    }
}
