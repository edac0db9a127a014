//! Who may use the web UI: HTTP Basic (`--web-auth USER:PASS`) and the
//! shared token as `Bearer`; with neither configured, everyone.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use cicada_proto::auth::Token;

/// The `--web-auth` credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    user: String,
    password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BasicAuth({}:<redacted>)", self.user)
    }
}

impl FromStr for BasicAuth {
    type Err = String;

    /// Parses `USER:PASS` (the password may contain `:`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (user, password) = text
            .split_once(':')
            .ok_or("expected USER:PASS (a user name, a colon, a password)")?;
        if user.is_empty() || password.is_empty() {
            return Err("expected USER:PASS with a non-empty user and password".into());
        }
        if text.chars().any(char::is_control) {
            return Err("USER:PASS must not contain control characters".into());
        }
        Ok(Self {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }
}

impl BasicAuth {
    /// The `authorization` header value a client sends.
    pub fn header(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    fn matches(&self, encoded: &[u8]) -> bool {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.password);
        constant_time_eq(expected.as_bytes(), &decoded)
    }
}

/// True when the request may go on: nothing is configured, or it carries the
/// Basic credentials or the shared token.
pub(crate) fn allowed(
    basic: Option<&BasicAuth>,
    token: Option<&Token>,
    authorization: Option<&[u8]>,
) -> bool {
    if basic.is_none() && token.is_none() {
        return true;
    }
    let Some(value) = authorization else {
        return false;
    };
    if let Some(encoded) = strip_scheme(value, b"basic ") {
        let encoded = encoded.trim_ascii();
        if basic.is_some_and(|basic| basic.matches(encoded)) {
            return true;
        }
        // A browser can only send Basic: the shared token is accepted as
        // the password, whatever the user name.
        return token.is_some_and(|token| token_as_password(token, encoded));
    }
    if let (Some(token), Some(presented)) = (token, strip_scheme(value, b"bearer ")) {
        return token.matches(presented);
    }
    false
}

/// The credentials after an auth scheme, matched case-insensitively (RFC 7235).
fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme))
        .then(|| &value[scheme.len()..])
}

fn token_as_password(token: &Token, encoded: &[u8]) -> bool {
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    match decoded.iter().position(|&b| b == b':') {
        Some(colon) => token.matches(&decoded[colon + 1..]),
        None => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_and_password() {
        let auth: BasicAuth = "admin:s3:cret".parse().unwrap();
        assert_eq!(auth.header(), "Basic YWRtaW46czM6Y3JldA==");
        for bad in ["admin", ":pass", "user:", ""] {
            assert!(bad.parse::<BasicAuth>().is_err(), "{bad}");
        }
    }

    #[test]
    fn checks_basic_and_bearer() {
        let basic: BasicAuth = "u:p".parse().unwrap();
        let token = Token::new("tok-123").unwrap();
        let header = basic.header();
        assert!(allowed(None, None, None));
        assert!(!allowed(Some(&basic), None, None));
        assert!(allowed(Some(&basic), None, Some(header.as_bytes())));
        assert!(!allowed(Some(&basic), None, Some(b"Basic dTp4")));
        assert!(!allowed(Some(&basic), None, Some(b"Bearer tok-123")));
        assert!(allowed(Some(&basic), Some(&token), Some(b"Bearer tok-123")));
        assert!(allowed(None, Some(&token), Some(b"Bearer tok-123")));
        assert!(!allowed(None, Some(&token), Some(b"Bearer tok-12")));
        assert!(!allowed(None, Some(&token), Some(header.as_bytes())));
    }

    #[test]
    fn schemes_are_case_insensitive_and_browsers_can_send_the_token() {
        let basic: BasicAuth = "u:p".parse().unwrap();
        let token = Token::new("tok-123").unwrap();
        let lower = basic.header().replacen("Basic", "basic", 1);
        assert!(allowed(Some(&basic), None, Some(lower.as_bytes())));
        assert!(allowed(None, Some(&token), Some(b"bearer tok-123")));
        // Basic with the token as the password (any user), as a browser's
        // login dialog sends it; "anyone:tok-123" and ":tok-123".
        assert!(allowed(
            None,
            Some(&token),
            Some(b"Basic YW55b25lOnRvay0xMjM=")
        ));
        assert!(allowed(
            Some(&basic),
            Some(&token),
            Some(b"Basic OnRvay0xMjM=")
        ));
        // "anyone:tok-12", and no colon at all.
        assert!(!allowed(
            None,
            Some(&token),
            Some(b"Basic YW55b25lOnRvay0xMg==")
        ));
        assert!(!allowed(None, Some(&token), Some(b"Basic dG9rLTEyMw==")));
    }
}
