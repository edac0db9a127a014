//! The fixed route table of the sample target.

use std::fmt;
use std::str::FromStr;

use http::Method;

use crate::error::ConfigError;

/// A counted route: one method and one path of the IoT service.
///
/// `GET /stats` and `POST /stats/reset` are not routes: they are the
/// observation channel and are never counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /`: a 3-byte body, the same as the nginx baseline of the benchmarks.
    Root,
    /// `POST /login` with form field `deviceid`.
    Login,
    /// `POST /metrics` with form fields `deviceid` and `timestamp`.
    Metrics,
    /// `GET /Test/V1`.
    TestV1,
    /// `GET /Test/V2`.
    TestV2,
    /// `GET /Test/V3`.
    TestV3,
    /// `GET /Test/V4`.
    TestV4,
    /// `GET /health`: never delayed or failed unless overridden per route.
    Health,
    /// `POST /session` with form field `user`: starts a session, answered
    /// with a `sid` cookie and a `Location: /account/USER` header.
    Session,
    /// `GET /account` or `GET /account/USER`: `401` unless the request
    /// carries the `sid` cookie of a session (of USER, when named); answers
    /// `{"user": USER, "items": 3}`.
    Account,
    /// `GET /private`: `401` unless it has basic auth `cicada:secret`.
    Private,
}

impl Route {
    /// Number of routes; counters and plans are arrays of this length.
    pub const COUNT: usize = 11;

    /// Every route, in index order.
    pub const ALL: [Route; Route::COUNT] = [
        Route::Root,
        Route::Login,
        Route::Metrics,
        Route::TestV1,
        Route::TestV2,
        Route::TestV3,
        Route::TestV4,
        Route::Health,
        Route::Session,
        Route::Account,
        Route::Private,
    ];

    /// The route serving `method` on `path`, if any.
    pub fn find(method: &Method, path: &str) -> Option<Route> {
        let route = match path {
            "/" => Route::Root,
            "/login" => Route::Login,
            "/metrics" => Route::Metrics,
            "/Test/V1" => Route::TestV1,
            "/Test/V2" => Route::TestV2,
            "/Test/V3" => Route::TestV3,
            "/Test/V4" => Route::TestV4,
            "/health" => Route::Health,
            "/session" => Route::Session,
            "/account" => Route::Account,
            p if p.starts_with("/account/") => Route::Account,
            "/private" => Route::Private,
            _ => return None,
        };
        (route.method() == method).then_some(route)
    }

    /// Position of this route in [`Route::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The HTTP method the route answers.
    pub fn method(self) -> &'static Method {
        match self {
            Route::Login | Route::Metrics | Route::Session => &Method::POST,
            _ => &Method::GET,
        }
    }

    /// `METHOD /path`, the key used in `/stats` and in per-route flags.
    pub fn name(self) -> &'static str {
        match self {
            Route::Root => "GET /",
            Route::Login => "POST /login",
            Route::Metrics => "POST /metrics",
            Route::TestV1 => "GET /Test/V1",
            Route::TestV2 => "GET /Test/V2",
            Route::TestV3 => "GET /Test/V3",
            Route::TestV4 => "GET /Test/V4",
            Route::Health => "GET /health",
            Route::Session => "POST /session",
            Route::Account => "GET /account",
            Route::Private => "GET /private",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Route {
    type Err = ConfigError;

    /// Accepts `METHOD /path` (`POST /login`) or just the path (`/login`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (method, path) = match s.split_once(' ') {
            Some((method, path)) => (Some(method), path.trim()),
            None => (None, s),
        };
        Route::ALL
            .into_iter()
            .find(|route| {
                route.name().split_once(' ').is_some_and(|(m, p)| {
                    p == path && method.is_none_or(|method| method.eq_ignore_ascii_case(m))
                })
            })
            .ok_or_else(|| ConfigError::UnknownRoute(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_all() {
        for (i, route) in Route::ALL.into_iter().enumerate() {
            assert_eq!(route.index(), i);
        }
    }

    #[test]
    fn names_round_trip() {
        for route in Route::ALL {
            assert_eq!(route.name().parse::<Route>().unwrap(), route);
            let (method, path) = route.name().split_once(' ').unwrap();
            assert_eq!(Route::find(&method.parse().unwrap(), path), Some(route));
            assert_eq!(path.parse::<Route>().unwrap(), route);
        }
    }

    #[test]
    fn wrong_method_or_path_is_no_route() {
        assert_eq!(Route::find(&Method::GET, "/login"), None);
        assert_eq!(Route::find(&Method::GET, "/nope"), None);
        assert!("GET /login".parse::<Route>().is_err());
        assert!("/stats".parse::<Route>().is_err());
    }
}
