//! The shared token that authenticates every cicada gRPC call except
//! `grpc.health.v1`.
//!
//! Servers wrap each cicada service in [`RequireToken`]; clients wrap their
//! channel in [`AttachToken`] ([`AuthChannel`]). Both carry an optional
//! [`Token`]: without one the interceptors let everything through, which
//! [`check_listen`] allows only on loopback addresses (or with an explicit
//! `--insecure-no-auth`).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The metadata key the token travels in.
pub const HEADER: &str = "authorization";

/// A channel whose every call carries the token (when there is one).
pub type AuthChannel = InterceptedService<Channel, AttachToken>;

/// Errors of token configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is empty")]
    Empty,
    #[error("the token must be printable ASCII without spaces")]
    NotPrintable,
    #[error("failed to read the token file {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr} without authentication: set CICADA_TOKEN (or --token / --token-file), or pass --insecure-no-auth to serve this non-loopback address unauthenticated"
    )]
    Unauthenticated { addr: SocketAddr },
}

/// A shared secret. `Debug` never shows it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// Checks and wraps a token (surrounding whitespace is trimmed).
    pub fn new(text: &str) -> Result<Self, AuthError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AuthError::Empty);
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(AuthError::NotPrintable);
        }
        Ok(Self(text.into()))
    }

    /// Reads a token from a file (a mounted Secret, say).
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::File {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(&text)
    }

    /// The token from a flag/env value or a file: the value wins; neither
    /// gives `None`.
    pub fn resolve(value: Option<&str>, file: Option<&Path>) -> Result<Option<Self>, AuthError> {
        match (value, file) {
            (Some(value), _) => Self::new(value).map(Some),
            (None, Some(path)) => Self::from_file(path).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// True when `candidate` equals the token, in time that depends only on
    /// the lengths (never on where the first difference is).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }

    /// The `authorization` header value a client sends: `Bearer <token>`.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Checks a presented `authorization` header (gRPC metadata or HTTP);
    /// the error says what the client has to fix.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), &'static str> {
        let Some(value) = authorization else {
            return Err(
                "missing token: this cicada server requires `authorization: Bearer <token>` (set CICADA_TOKEN or --token on the client)",
            );
        };
        let presented = value
            .strip_prefix(b"Bearer ")
            .ok_or("malformed authorization: expected `Bearer <token>`")?;
        if self.matches(presented) {
            Ok(())
        } else {
            Err("wrong token: CICADA_TOKEN differs between this client and the server")
        }
    }

    fn bearer(&self) -> AsciiMetadataValue {
        MetadataValue::try_from(format!("Bearer {}", self.0))
            .expect("a checked token is a valid header value")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for Token {}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses an unauthenticated server on a non-loopback address unless the
/// operator said so explicitly. Call before binding.
pub fn check_listen(
    addr: SocketAddr,
    token: Option<&Token>,
    insecure_no_auth: bool,
) -> Result<(), AuthError> {
    if token.is_none() && !insecure_no_auth && !addr.ip().is_loopback() {
        return Err(AuthError::Unauthenticated { addr });
    }
    Ok(())
}

/// Server side: rejects calls without `authorization: Bearer <token>` with
/// `UNAUTHENTICATED`. Without a token it accepts every call.
#[derive(Clone, Debug, Default)]
pub struct RequireToken {
    token: Option<Token>,
}

impl RequireToken {
    pub fn new(token: Option<Token>) -> Self {
        Self { token }
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let presented = request.metadata().get(HEADER).map(|value| value.as_bytes());
        token
            .check(presented)
            .map(|()| request)
            .map_err(Status::unauthenticated)
    }
}

/// Client side: adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug, Default)]
pub struct AttachToken {
    value: Option<AsciiMetadataValue>,
}

impl AttachToken {
    pub fn new(token: Option<&Token>) -> Self {
        Self {
            value: token.map(Token::bearer),
        }
    }

    /// `channel` with this token on every call.
    pub fn wrap(self, channel: Channel) -> AuthChannel {
        InterceptedService::new(channel, self)
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.value {
            request.metadata_mut().insert(HEADER, value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(server: Option<&str>, sent: Option<&str>) -> Result<(), tonic::Code> {
        let mut server = RequireToken::new(server.map(|t| Token::new(t).unwrap()));
        let mut request = Request::new(());
        if let Some(sent) = sent {
            request.metadata_mut().insert(HEADER, sent.parse().unwrap());
        }
        server
            .call(request)
            .map(|_| ())
            .map_err(|status| status.code())
    }

    #[test]
    fn the_server_accepts_only_the_right_bearer_token() {
        let denied = Err(tonic::Code::Unauthenticated);
        assert_eq!(check(Some("s3cret"), Some("Bearer s3cret")), Ok(()));
        assert_eq!(check(Some("s3cret"), None), denied);
        assert_eq!(check(Some("s3cret"), Some("Bearer s3cre")), denied);
        assert_eq!(check(Some("s3cret"), Some("Bearer s3cret2")), denied);
        assert_eq!(check(Some("s3cret"), Some("s3cret")), denied);
        assert_eq!(check(Some("s3cret"), Some("Basic s3cret")), denied);
        assert_eq!(check(None, None), Ok(()));
        assert_eq!(check(None, Some("Bearer anything")), Ok(()));
    }

    #[test]
    fn the_client_attaches_what_the_server_expects() {
        let token = Token::new("abc-123").unwrap();
        let request = AttachToken::new(Some(&token))
            .call(Request::new(()))
            .unwrap();
        let mut server = RequireToken::new(Some(token));
        assert!(server.call(request).is_ok());
        let bare = AttachToken::new(None).call(Request::new(())).unwrap();
        assert!(bare.metadata().get(HEADER).is_none());
    }

    #[test]
    fn tokens_are_checked_and_never_printed() {
        assert!(matches!(Token::new("  "), Err(AuthError::Empty)));
        assert!(matches!(Token::new("a b"), Err(AuthError::NotPrintable)));
        let token = Token::new(" t0ken\n").unwrap();
        assert!(token.matches(b"t0ken"));
        assert!(!format!("{token:?}").contains("t0ken"));
        assert_eq!(Token::resolve(None, None).unwrap(), None);
    }

    #[test]
    fn only_loopback_may_listen_without_a_token() {
        let token = Token::new("t").unwrap();
        let local: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let local6: SocketAddr = "[::1]:7000".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        assert!(check_listen(local, None, false).is_ok());
        assert!(check_listen(local6, None, false).is_ok());
        assert!(check_listen(any, Some(&token), false).is_ok());
        assert!(check_listen(any, None, true).is_ok());
        let error = check_listen(any, None, false).unwrap_err();
        assert!(error.to_string().contains("CICADA_TOKEN"), "{error}");
    }
}
