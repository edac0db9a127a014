//! The target allowlist: which hosts a run may send traffic to.
//!
//! A controller started with `--allow-target PATTERN` (repeatable) refuses
//! a run whose host is outside the list, and ships the list to its workers,
//! which check the addresses they actually connect to. A pattern is one of:
//!
//! - a host name, `shop.example.com` (that name only; case-insensitive),
//! - a suffix wildcard, `*.example.com` (any name ending in `.example.com`,
//!   not `example.com` itself),
//! - an IP address, `10.0.0.7` or `::1`,
//! - a CIDR block, `10.0.0.0/8` or `fd00::/8`,
//! - any of the first three with a port: `shop.example.com:8443`,
//!   `*.example.com:443`, `10.0.0.7:8080`, `[::1]:8080` (without a port,
//!   every port matches).
//!
//! Names and addresses: a name pattern matches the URL's host text, never
//! an address; an IP or CIDR pattern matches an IP literal host, or a name
//! whose addresses (as resolved where the check runs) are all inside it.
//! [`AllowList::check`] says which of the two a host needs; resolving is
//! the caller's (the controller resolves at start, the worker at connect).
//! An empty list allows everything.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One `--allow-target` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPattern {
    kind: PatternKind,
    /// `None`: every port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    /// An exact host name, lower-case, without a trailing dot.
    Name(String),
    /// `*.SUFFIX`: names ending in `.SUFFIX` (lower-case).
    Suffix(String),
    /// An address block (a single address is a /32 or /128).
    Block { network: IpAddr, prefix: u8 },
}

/// Why a pattern could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid target pattern {pattern:?}: {reason}; allowed: a host (shop.example.com), host:port, \
     *.example.com, an IP address, IP:port, [IPv6]:port or a CIDR block (10.0.0.0/8, fd00::/8)"
)]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl TargetPattern {
    /// Parses one pattern (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<TargetPattern, PatternError> {
        let error = |reason: &str| PatternError {
            pattern: text.to_owned(),
            reason: reason.to_owned(),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(error("it is empty"));
        }
        let url_like = |address: &str| {
            !address
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':'))
        };
        if text.contains("://")
            || text.contains(['?', '#', '@'])
            || text
                .split_once('/')
                .is_some_and(|(address, _)| url_like(address))
        {
            return Err(error("give a host, not a URL"));
        }
        if let Some((address, prefix)) = text.split_once('/') {
            let network: IpAddr = address
                .parse()
                .map_err(|_| error("the part before \"/\" is not an IP address"))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| error(&format!("the prefix length must be 0 to {max}")))?;
            return Ok(TargetPattern {
                kind: PatternKind::Block {
                    network: mask(network, prefix),
                    prefix,
                },
                port: None,
            });
        }
        // A bare IPv6 address has colons of its own: no port.
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(TargetPattern::block(ip, None));
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(TargetPattern::block(addr.ip(), Some(addr.port())));
        }
        if text.starts_with('[') {
            return Err(error("expected [IPv6]:port"));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port > 0)
                    .ok_or_else(|| error("the port must be a number from 1 to 65535"))?;
                (host, Some(port))
            }
            None => (text, None),
        };
        let host = normalize(host);
        let (name, wildcard) = match host.strip_prefix("*.") {
            Some(suffix) => (suffix, true),
            None => (host.as_str(), false),
        };
        if name.contains('*') {
            return Err(error(
                "a wildcard is only allowed as a whole first label (*.example.com)",
            ));
        }
        valid_name(name).map_err(|reason| error(&reason))?;
        let kind = if wildcard {
            PatternKind::Suffix(name.to_owned())
        } else {
            PatternKind::Name(name.to_owned())
        };
        Ok(TargetPattern { kind, port })
    }

    fn block(ip: IpAddr, port: Option<u16>) -> TargetPattern {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        TargetPattern {
            kind: PatternKind::Block {
                network: ip,
                prefix,
            },
            port,
        }
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|allowed| allowed == port)
    }

    /// Whether the host name `name` (lower-case, no trailing dot) and port match.
    fn matches_name(&self, name: &str, port: u16) -> bool {
        self.port_matches(port)
            && match &self.kind {
                PatternKind::Name(allowed) => allowed == name,
                PatternKind::Suffix(suffix) => name
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                PatternKind::Block { .. } => false,
            }
    }

    /// Whether the address `ip` and port match.
    fn matches_addr(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        self.port_matches(port)
            && match self.kind {
                PatternKind::Block { network, prefix } => {
                    network.is_ipv4() == ip.is_ipv4() && mask(ip, prefix) == network
                }
                _ => false,
            }
    }
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.kind {
            PatternKind::Name(name) => name.clone(),
            PatternKind::Suffix(suffix) => format!("*.{suffix}"),
            PatternKind::Block { network, prefix } => {
                let full = if network.is_ipv4() { 32 } else { 128 };
                match (network, self.port) {
                    (_, None) if *prefix == full => network.to_string(),
                    (_, None) => format!("{network}/{prefix}"),
                    (IpAddr::V6(v6), Some(_)) => format!("[{v6}]"),
                    (IpAddr::V4(v4), Some(_)) => v4.to_string(),
                }
            }
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

/// The patterns a controller was started with; empty: no restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<TargetPattern>,
}

/// What [`AllowList::check`] decided about a host before any resolving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The host (name or IP literal) and port are in the list.
    Allowed,
    /// A name no name pattern matches, with address patterns in the list:
    /// allowed only if the addresses it resolves to are inside them.
    Resolve { name: String, port: u16 },
    /// Outside the list, whatever the name resolves to.
    Refused,
}

/// A run's host that the list refuses, or that is not a URL at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error(
        "target {target} is not in the allowed targets ({allowed}); the controller's --allow-target decides"
    )]
    NotAllowed { target: String, allowed: String },
}

impl AllowList {
    /// The list of parsed patterns.
    pub fn new(patterns: Vec<TargetPattern>) -> AllowList {
        AllowList { patterns }
    }

    /// The list of `patterns`; the first one that does not parse is the error.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<AllowList, PatternError> {
        let patterns = patterns
            .iter()
            .map(|pattern| TargetPattern::parse(pattern.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { patterns })
    }

    /// True when the list allows every target (no pattern given).
    pub fn is_unrestricted(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[TargetPattern] {
        &self.patterns
    }

    /// The patterns, each as it would be given to `--allow-target`.
    pub fn to_strings(&self) -> Vec<String> {
        self.patterns.iter().map(ToString::to_string).collect()
    }

    /// Decides about `url` (`http[s]://host[:port]`, the run's host).
    pub fn check(&self, url: &str) -> Result<Check, TargetError> {
        let (host, port) = host_port(url)?;
        Ok(self.check_host(&host, port))
    }

    /// Decides about a host (a name, or an IP literal without brackets) and port.
    pub fn check_host(&self, host: &str, port: u16) -> Check {
        if self.is_unrestricted() {
            return Check::Allowed;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if self.allows_addr(ip, port) {
                Check::Allowed
            } else {
                Check::Refused
            };
        }
        let name = normalize(host);
        if self.patterns.iter().any(|p| p.matches_name(&name, port)) {
            Check::Allowed
        } else if self
            .patterns
            .iter()
            .any(|p| matches!(p.kind, PatternKind::Block { .. }) && p.port_matches(port))
        {
            Check::Resolve { name, port }
        } else {
            Check::Refused
        }
    }

    /// Whether an address the target resolved to (and its port) is inside
    /// an IP or CIDR pattern.
    pub fn allows_addr(&self, ip: IpAddr, port: u16) -> bool {
        self.is_unrestricted() || self.patterns.iter().any(|p| p.matches_addr(ip, port))
    }

    /// The error for a refused `target`, naming the list.
    pub fn refusal(&self, target: &str) -> TargetError {
        TargetError::NotAllowed {
            target: target.to_owned(),
            allowed: self.to_strings().join(", "),
        }
    }
}

/// The host (IPv6 without brackets) and port of `http[s]://host[:port]`.
pub fn host_port(url: &str) -> Result<(String, u16), TargetError> {
    let invalid = |reason: &str| TargetError::InvalidHost {
        host: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(invalid("expected an http:// or https:// URL")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "user information (user@) is not allowed in the host",
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    Ok((host, authority.port_u16().unwrap_or(default_port)))
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the host name is empty".to_owned());
    }
    if name.len() > 253 {
        return Err("the host name is longer than 253 characters".to_owned());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must have 1 to 63 characters".to_owned());
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Err(format!(
                "{bad:?} is not allowed in a host name (letters, digits, '-', '_', '.')"
            ));
        }
    }
    Ok(())
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as its IPv4 address, so
/// that a v4 block covers it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// `ip` with every bit after the first `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & kept).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & kept).into())
        }
    }
}

#[cfg(test)]
mod tests;
