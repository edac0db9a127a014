//! Cross-site protections. A browser sends cached Basic credentials, and
//! reaches a loopback UI, on behalf of any page it has open, so
//! authentication alone does not stop another site from starting a run
//! (CSRF) or, through a DNS name re-pointed at 127.0.0.1, reading the API
//! (DNS rebinding). Every request but `/health` passes [`check`]:
//!
//! - `Sec-Fetch-Site: cross-site` is refused (browsers set it themselves);
//! - an `Origin` must name the host the request was sent to (`Host`);
//! - a request that changes something (not GET/HEAD) must be
//!   `application/json`: a cross-site page cannot send that without a
//!   CORS preflight, which this server never grants;
//! - an open UI (no login) on a loopback listener answers only requests
//!   addressed to a loopback name (`127.0.0.1`, `localhost`, `[::1]`).

use hyper::{HeaderMap, Method};

/// Why a request was refused (403, or 415 for the content type).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    CrossSite(String),
    NotJson,
}

/// Checks one request's headers. `open_loopback`: no login is configured
/// and the listener is a loopback address.
pub(crate) fn check(
    method: &Method,
    headers: &HeaderMap,
    open_loopback: bool,
) -> Result<(), Refused> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site") == Some("cross-site") {
        return Err(Refused::CrossSite(
            "cross-site request refused (Sec-Fetch-Site: cross-site)".into(),
        ));
    }
    let host = header("host").map(str::to_ascii_lowercase);
    if let Some(origin) = header("origin") {
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/').to_ascii_lowercase());
        if origin_host.is_none() || origin_host != host {
            return Err(Refused::CrossSite(format!(
                "cross-origin request refused: Origin {origin:?} is not this server ({})",
                host.as_deref().unwrap_or("no Host header")
            )));
        }
    }
    if open_loopback && !host.as_deref().is_some_and(is_loopback_name) {
        return Err(Refused::CrossSite(format!(
            "the web UI without a login answers only loopback names (127.0.0.1, localhost, [::1]), not Host {:?}; set --web-auth to serve other names",
            host.as_deref().unwrap_or("")
        )));
    }
    if method != Method::GET && method != Method::HEAD {
        let json = header("content-type").is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(Refused::NotJson);
        }
    }
    Ok(())
}

/// `127.0.0.1[:port]` (any 127/8), `localhost[:port]`, `[::1][:port]`.
fn is_loopback_name(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, _)) => inside,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn same_origin_json_posts_pass() {
        let h = headers(&[
            ("host", "127.0.0.1:8089"),
            ("origin", "http://127.0.0.1:8089"),
            ("content-type", "application/json"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check(&Method::POST, &h, true), Ok(()));
        // Tools (curl) send no Origin and no Sec-Fetch-Site.
        let h = headers(&[
            ("host", "localhost:8089"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert_eq!(check(&Method::POST, &h, true), Ok(()));
        let h = headers(&[("host", "[::1]:8089")]);
        assert_eq!(check(&Method::GET, &h, true), Ok(()));
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let h = headers(&[("host", "127.0.0.1:8089"), ("sec-fetch-site", "cross-site")]);
        assert!(matches!(
            check(&Method::GET, &h, false),
            Err(Refused::CrossSite(_))
        ));
        let h = headers(&[
            ("host", "127.0.0.1:8089"),
            ("origin", "http://evil.example"),
            ("content-type", "application/json"),
        ]);
        assert!(matches!(
            check(&Method::POST, &h, false),
            Err(Refused::CrossSite(_))
        ));
        let h = headers(&[("host", "127.0.0.1:8089"), ("origin", "null")]);
        assert!(matches!(
            check(&Method::GET, &h, false),
            Err(Refused::CrossSite(_))
        ));
    }

    #[test]
    fn simple_form_posts_are_refused() {
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let h = headers(&[("host", "127.0.0.1:8089"), ("content-type", content_type)]);
            assert_eq!(
                check(&Method::POST, &h, false),
                Err(Refused::NotJson),
                "{content_type}"
            );
        }
        let h = headers(&[("host", "127.0.0.1:8089")]);
        assert_eq!(check(&Method::POST, &h, false), Err(Refused::NotJson));
    }

    #[test]
    fn an_open_ui_answers_loopback_names_only() {
        let h = headers(&[("host", "attacker.example:8089")]);
        assert!(matches!(
            check(&Method::GET, &h, true),
            Err(Refused::CrossSite(_))
        ));
        // With a login, names are the operator's business.
        assert_eq!(check(&Method::GET, &h, false), Ok(()));
        assert!(matches!(
            check(&Method::GET, &HeaderMap::new(), true),
            Err(Refused::CrossSite(_))
        ));
        for host in ["127.0.0.1", "127.0.0.2:1", "localhost", "[::1]:80"] {
            assert!(is_loopback_name(host), "{host}");
        }
        for host in ["localhost.evil", "10.0.0.1:80", "[::2]", "127.0.0.1.nip.io"] {
            assert!(!is_loopback_name(host), "{host}");
        }
    }
}
