//! A virtual user's cookie jar: RFC 6265 storage and matching (domain,
//! path, expiry, Secure) by `cookie_store`. A user gets one on its first
//! `Set-Cookie`, so users of a target that sets none pay nothing for it.

use cicada_scenario::Cookies;
use cookie_store::CookieStore;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use url::Url;

#[derive(Default)]
pub(crate) struct Jar(CookieStore);

impl Jar {
    /// Keeps the cookies a response to `url` sets. Malformed ones are
    /// ignored, as browsers do.
    pub fn store(&mut self, headers: &HeaderMap, url: &Url) {
        for value in headers.get_all(SET_COOKIE) {
            if let Ok(text) = value.to_str() {
                let _ = self.0.parse(text, url);
            }
        }
    }

    /// True when it holds no unexpired cookie.
    pub fn is_empty(&self) -> bool {
        self.0.iter_unexpired().next().is_none()
    }

    /// The `Cookie` header for a request to `url`, if any cookie applies.
    pub fn header(&self, url: &Url) -> Option<HeaderValue> {
        let mut text = String::new();
        for (name, value) in self.0.get_request_values(url) {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(name);
            text.push('=');
            text.push_str(value);
        }
        if text.is_empty() {
            return None;
        }
        HeaderValue::from_str(&text).ok()
    }
}

impl Cookies for Jar {
    fn cookie(&self, name: &str) -> Option<&str> {
        self.0
            .iter_unexpired()
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_cookies(values: &[&str]) -> HeaderMap {
        values
            .iter()
            .map(|v| (SET_COOKIE, HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn cookies_follow_path_expiry_and_secure() {
        // A name, not loopback: cookie_store (like browsers) treats
        // loopback as a secure context and sends Secure cookies over http.
        let origin = Url::parse("http://shop.test:8080/session").unwrap();
        let mut jar = Jar::default();
        jar.store(
            &set_cookies(&[
                "sid=abc; Path=/; HttpOnly",
                "cart=1; Path=/cart",
                "old=x; Path=/; Max-Age=0",
                "tls=y; Path=/; Secure",
                "not a cookie",
            ]),
            &origin,
        );
        let header = |path: &str| {
            let url = origin.join(path).unwrap();
            jar.header(&url).map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("/account").as_deref(), Some("sid=abc"));
        let cart = header("/cart/items").unwrap();
        assert!(
            cart.contains("sid=abc") && cart.contains("cart=1"),
            "{cart}"
        );
        assert_eq!(jar.cookie("sid"), Some("abc"));
        assert_eq!(jar.cookie("old"), None, "expired at once");
        // Secure cookies only go over https (cookies do not depend on the
        // port, RFC 6265 section 8.5); another host gets none.
        let https = Url::parse("https://shop.test:8443/").unwrap();
        let secure = jar.header(&https).unwrap();
        assert!(secure.to_str().unwrap().contains("tls=y"), "{secure:?}");
        let elsewhere = Url::parse("http://other.test:8080/").unwrap();
        assert_eq!(jar.header(&elsewhere), None);
        let loopback = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(jar.header(&loopback), None, "host-only cookies");
    }

    #[test]
    fn a_later_cookie_replaces_one_of_the_same_name() {
        let url = Url::parse("http://127.0.0.1:8080/").unwrap();
        let mut jar = Jar::default();
        jar.store(&set_cookies(&["sid=1; Path=/"]), &url);
        jar.store(&set_cookies(&["sid=2; Path=/"]), &url);
        assert_eq!(jar.header(&url).unwrap(), "sid=2");
    }
}
