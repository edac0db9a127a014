//! A lean HTTP/1.1 client connection, one per virtual user: the request is
//! written with one `write`, either as the plan encoded it once (a step
//! with nothing rendered per request) or encoded straight into a buffer the
//! thread lends for the exchange; the response head is parsed in place with
//! `httparse` and the body framed by `Content-Length`, chunked transfer
//! coding or the end of the connection (RFC 9112 section 6).
//!
//! hyper's client keeps an 8 KiB read buffer, an 8 KiB write buffer and a
//! driver task per connection, and hands each request to that task over a
//! channel; here an idle connection is its socket alone, and a request is
//! one future on the user's own task. No pipelining: a connection carries
//! one exchange at a time.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CONTENT_LENGTH, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

/// Longest response head accepted (status line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 128;
/// A lent buffer larger than this is not kept for the next exchange.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;
/// Buffers a thread keeps for its next exchanges; a burst of more at once
/// allocates the rest and frees them after, so a thread's spare buffers
/// stay under 64 x 64 KiB whatever its users do.
const KEEP_BUFFERS: usize = 64;
/// Bytes asked for per read.
const READ_BYTES: usize = 16 * 1024;

/// The byte stream of a connection: plaintext or TLS (the same stream type
/// cicada's own clients use).
pub(crate) type Io = cicada_tls::ClientConn;

/// An idle connection is checked for a close by the server (one read that
/// would block) only when it has been idle this long: a busy connection
/// pays no syscall for it, and servers close idle connections after
/// seconds, not milliseconds (nginx: 75 s; a `Connection: close` answer is
/// seen without a check).
const IDLE_CHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// One user's HTTP/1.1 connection.
pub(crate) struct Conn {
    io: Io,
    /// False once the connection must not carry another exchange (the
    /// server said `close`, the body ran to the end of the connection, an
    /// exchange failed half-way).
    reusable: bool,
    /// When its last exchange ended (`None`: none yet).
    idle_since: Option<std::time::Instant>,
}

/// Why an exchange failed, and whether the request could have reached the
/// server (a request that was not written may be sent again).
#[derive(Debug)]
pub(crate) struct Error {
    pub message: String,
    /// The request did not reach the server whole (its write failed on a
    /// kept-alive connection): it may go again on a new connection.
    pub unsent: bool,
}

impl Error {
    fn sent(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            unsent: false,
        }
    }
}

/// What of a response the caller reads beyond its status and length.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Keep {
    /// The body, into `Exchange::body`.
    pub body: bool,
    /// Every header, into `Exchange::headers`.
    pub headers: bool,
    /// The `Set-Cookie` headers (for the user's cookie jar), into
    /// `Exchange::headers`; with neither it is empty.
    pub set_cookie: bool,
}

/// A response read to its end.
pub(crate) struct Exchange {
    pub status: u16,
    /// The headers `Keep` asked for (all, or `Set-Cookie`), else empty.
    pub headers: HeaderMap,
    /// Body bytes received (after removing the chunked coding).
    pub bytes: u64,
    /// The body, when it was asked for.
    pub body: Option<Vec<u8>>,
}

impl Conn {
    pub fn new(io: Io) -> Conn {
        Conn {
            io,
            reusable: true,
            idle_since: None,
        }
    }

    /// Whether this idle connection can no longer carry a request: the
    /// server closed it (a read would end now), sent bytes nobody asked
    /// for, or an earlier exchange left it unusable. Never waits.
    pub fn is_closed(&mut self) -> bool {
        if !self.reusable {
            return true;
        }
        if self
            .idle_since
            .is_none_or(|since| since.elapsed() < IDLE_CHECK_AFTER)
        {
            return false;
        }
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let closed = !matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut buf),
            Poll::Pending
        );
        self.reusable = !closed;
        closed
    }

    /// Sends one request and reads its response to the end.
    pub async fn exchange(
        &mut self,
        method: &Method,
        request: Request<'_>,
        keep: Keep,
    ) -> Result<Exchange, Error> {
        // Unusable until the exchange has ended well.
        self.reusable = false;
        let reused = self.idle_since.is_some();
        let mut buffer = Lent::take();
        let bytes = match request {
            Request::Encoded(bytes) => bytes,
            Request::Parts { uri, headers, body } => {
                encode(&mut buffer.0, method, uri, headers, body);
                &buffer.0
            }
        };
        self.io.write_all(bytes).await.map_err(|e| Error {
            message: format!("failed to send the request: {e}"),
            // A server does not act on a request it did not receive
            // whole: on a kept-alive connection it had closed, the
            // request may go again on a new one.
            unsent: reused,
        })?;
        buffer.0.clear();
        let (exchange, reusable) = read_response(&mut self.io, &mut buffer.0, method, keep).await?;
        self.reusable = reusable;
        self.idle_since = Some(std::time::Instant::now());
        Ok(exchange)
    }
}

/// A request for [`Conn::exchange`].
pub(crate) enum Request<'a> {
    /// Already encoded (with `encode`): a step whose every part is static,
    /// encoded once when the run was prepared.
    Encoded(&'a [u8]),
    /// Encoded into the exchange's lent buffer.
    Parts {
        uri: &'a Uri,
        headers: &'a HeaderMap,
        body: &'a [u8],
    },
}

/// The request line, the headers and the body, as RFC 9112 writes them.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        uri.path_and_query()
            .map_or("/", |path| path.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A length for every body, and for methods whose requests carry one.
    let needs_length = !body.is_empty()
        || !matches!(
            *method,
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
        );
    if needs_length && !headers.contains_key(CONTENT_LENGTH) {
        use std::io::Write as _;
        // Writing to a Vec cannot fail.
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// At the end of the connection.
    Close,
}

/// Reads one response (after any 1xx) from `io`; `buf` is empty and lent.
/// Returns it and whether the connection can carry another exchange.
async fn read_response(
    io: &mut Io,
    buf: &mut Vec<u8>,
    method: &Method,
    keep: Keep,
) -> Result<(Exchange, bool), Error> {
    let mut reader = Reader { io, buf, pos: 0 };
    loop {
        let head = reader.head(keep).await?;
        if (100..200).contains(&head.status) {
            if head.status == 101 {
                return Err(Error::sent(
                    "the server switched protocols (101), which cicada does not follow",
                ));
            }
            // 100 Continue, 103 Early Hints: the final response follows.
            continue;
        }
        let framing = framing(&head, method)?;
        let mut body = keep.body.then(Vec::new);
        let bytes = match framing {
            Framing::Empty => 0,
            Framing::Length(n) => reader.body_exact(n, body.as_mut()).await?,
            Framing::Chunked => reader.body_chunked(body.as_mut()).await?,
            Framing::Close => reader.body_to_end(body.as_mut()).await?,
        };
        // Bytes past the response: the server sent something unasked for.
        let reusable =
            head.keep_alive && framing != Framing::Close && reader.pos == reader.buf.len();
        return Ok((
            Exchange {
                status: head.status,
                headers: head.headers,
                bytes,
                body,
            },
            reusable,
        ));
    }
}

struct Head {
    status: u16,
    /// The response headers when the exchange asked for them (checks,
    /// extraction, cookies), else empty: a response nobody reads is framed
    /// from httparse's slices without copying a header into a map.
    headers: HeaderMap,
    /// What `Transfer-Encoding` and `Content-Length` say of the body.
    body: BodyHeaders,
    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `keep-alive`.
    keep_alive: bool,
}

/// The body framing headers of a response, read once from its head.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyHeaders {
    /// No `Transfer-Encoding`, no `Content-Length`.
    Neither,
    /// `Transfer-Encoding`, chunked last or not.
    Codings { chunked_last: bool },
    /// `Content-Length` (every one agreeing).
    Length(u64),
    /// `Content-Length` that cannot frame a body; an error unless
    /// `Transfer-Encoding` overrides it (RFC 9112 6.3).
    BadLength(String),
}

fn framing(head: &Head, method: &Method) -> Result<Framing, Error> {
    if *method == Method::HEAD || head.status == 204 || head.status == 304 {
        return Ok(Framing::Empty);
    }
    match &head.body {
        // Transfer-Encoding wins over Content-Length (RFC 9112 6.3); without
        // chunked last the body runs to the end of the connection.
        BodyHeaders::Codings { chunked_last: true } => Ok(Framing::Chunked),
        BodyHeaders::Codings {
            chunked_last: false,
        }
        | BodyHeaders::Neither => Ok(Framing::Close),
        BodyHeaders::Length(length) => Ok(Framing::Length(*length)),
        BodyHeaders::BadLength(message) => Err(Error::sent(message.clone())),
    }
}

/// A header value as text when it is visible ASCII (what
/// `HeaderValue::to_str` accepts), else `None`.
fn visible(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&byte| byte == b'\t' || (0x20..0x7f).contains(&byte))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// The comma-separated tokens of one header value, trimmed; none when the
/// value is not visible ASCII.
fn tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    visible(value)
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// What the framing and connection headers say, in one pass over the
/// parsed head: the body headers and whether `Connection` asked for close
/// and for keep-alive.
fn scan(headers: &[httparse::Header<'_>]) -> (BodyHeaders, bool, bool) {
    let (mut close, mut asked) = (false, false);
    let mut chunked_last = None;
    let mut length: Option<Result<u64, String>> = None;
    for header in headers {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(header.value) {
                close |= token.eq_ignore_ascii_case("close");
                asked |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in tokens(header.value) {
                chunked_last = Some(coding.eq_ignore_ascii_case("chunked"));
            }
        } else if name.eq_ignore_ascii_case(b"content-length") && !matches!(length, Some(Err(_))) {
            let parsed = visible(header.value).and_then(|text| text.trim().parse::<u64>().ok());
            length = Some(match (parsed, length) {
                (None, _) => Err(format!(
                    "invalid content-length {:?}",
                    String::from_utf8_lossy(header.value)
                )),
                (Some(new), Some(Ok(old))) if new != old => {
                    Err("conflicting content-length headers".to_owned())
                }
                (Some(new), _) => Ok(new),
            });
        }
    }
    let body = match (chunked_last, length) {
        (Some(chunked_last), _) => BodyHeaders::Codings { chunked_last },
        (None, None) => BodyHeaders::Neither,
        (None, Some(Ok(length))) => BodyHeaders::Length(length),
        (None, Some(Err(message))) => BodyHeaders::BadLength(message),
    };
    (body, close, asked)
}

/// The response head at the start of `bytes` and its length, or `None`
/// when it is not complete yet. `keep`: the headers to copy into
/// `Head::headers` for whoever reads them.
fn parse_head(bytes: &[u8], keep: Keep) -> Result<Option<(Head, usize)>, Error> {
    // Uninitialised slots: httparse writes only the headers it finds, so a
    // response does not pay for clearing all MAX_HEADERS (4 KiB) first.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::sent(format!("invalid response: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let (body, close, asked) = scan(response.headers);
    let mut map = HeaderMap::new();
    for header in response.headers.iter() {
        let wanted = keep.headers
            || (keep.set_cookie && header.name.eq_ignore_ascii_case(SET_COOKIE.as_str()));
        if !wanted {
            continue;
        }
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| Error::sent(format!("invalid response header name {:?}", header.name)))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| Error::sent(format!("invalid value of response header {name}")))?;
        map.append(name, value);
    }
    // HTTP/1.1 keeps the connection unless told not to; 1.0 only if asked.
    let keep_alive = !close && (response.version == Some(1) || asked);
    Ok(Some((
        Head {
            status,
            headers: map,
            body,
            keep_alive,
        },
        length,
    )))
}

/// Reads from `io` through `buf`, whose bytes before `pos` are consumed.
struct Reader<'a> {
    io: &'a mut Io,
    buf: &'a mut Vec<u8>,
    pos: usize,
}

impl Reader<'_> {
    /// Reads more bytes; false at the end of the connection.
    async fn fill(&mut self) -> Result<bool, Error> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.reserve(READ_BYTES);
        let n = self
            .io
            .read_buf(self.buf)
            .await
            .map_err(|e| Error::sent(format!("failed to read the response: {e}")))?;
        Ok(n > 0)
    }

    async fn head(&mut self, keep: Keep) -> Result<Head, Error> {
        // A response seldom waits in the buffer: read before parsing.
        if self.pos == self.buf.len() && !self.fill().await? {
            return Err(Error::sent("connection closed before a response"));
        }
        loop {
            // Parsed by a plain function: its 128-entry header array is not
            // kept in the user's future across the read below.
            if let Some((head, length)) = parse_head(&self.buf[self.pos..], keep)? {
                self.pos += length;
                return Ok(head);
            }
            if self.buf.len() - self.pos > MAX_HEAD_BYTES {
                return Err(Error::sent(format!(
                    "response head over {} KiB",
                    MAX_HEAD_BYTES / 1024
                )));
            }
            if !self.fill().await? {
                return Err(Error::sent(if self.pos == self.buf.len() {
                    "connection closed before a response"
                } else {
                    "connection closed in the middle of the response head"
                }));
            }
        }
    }

    /// Takes up to `limit` buffered bytes into `keep`; how many it took.
    fn take(&mut self, limit: u64, keep: Option<&mut Vec<u8>>) -> u64 {
        let available = (self.buf.len() - self.pos) as u64;
        let n = available.min(limit) as usize;
        if let Some(keep) = keep {
            keep.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        }
        self.pos += n;
        n as u64
    }

    async fn body_exact(
        &mut self,
        length: u64,
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<u64, Error> {
        let mut remaining = length;
        loop {
            remaining -= self.take(remaining, keep.as_deref_mut());
            if remaining == 0 {
                return Ok(length);
            }
            if !self.fill().await? {
                return Err(Error::sent(format!(
                    "connection closed {remaining} bytes before the end of the body"
                )));
            }
        }
    }

    async fn body_to_end(&mut self, mut keep: Option<&mut Vec<u8>>) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            total += self.take(u64::MAX, keep.as_deref_mut());
            if !self.fill().await? {
                return Ok(total);
            }
        }
    }

    /// One CRLF-terminated line (without it), at most 4 KiB: its place in
    /// the buffer, valid until the next read.
    async fn line(&mut self) -> Result<std::ops::Range<usize>, Error> {
        loop {
            if let Some(end) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                let line = self.pos..self.pos + end;
                self.pos += end + 2;
                return Ok(line);
            }
            if self.buf.len() - self.pos > 4096 {
                return Err(Error::sent("chunk size line over 4 KiB"));
            }
            if !self.fill().await? {
                return Err(Error::sent(
                    "connection closed in the middle of a chunked body",
                ));
            }
        }
    }

    async fn body_chunked(&mut self, mut keep: Option<&mut Vec<u8>>) -> Result<u64, Error> {
        let mut total = 0u64;
        loop {
            let line = self.line().await?;
            let line = &self.buf[line];
            // The size, before any `;extension`.
            let digits = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(digits)
                .ok()
                .and_then(|digits| u64::from_str_radix(digits.trim(), 16).ok())
                .ok_or_else(|| {
                    Error::sent(format!(
                        "invalid chunk size {:?}",
                        String::from_utf8_lossy(line)
                    ))
                })?;
            if size == 0 {
                // Trailer fields until an empty line.
                while !self.line().await?.is_empty() {}
                return Ok(total);
            }
            total += self.body_exact(size, keep.as_deref_mut()).await?;
            if !self.line().await?.is_empty() {
                return Err(Error::sent("chunk data longer than its size"));
            }
        }
    }
}

thread_local! {
    /// Buffers lent to exchanges of this thread's users.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer lent for one exchange, given back (emptied) when dropped.
struct Lent(Vec<u8>);

impl Lent {
    fn take() -> Lent {
        let buffer = BUFFERS
            .with(|buffers| buffers.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(READ_BYTES));
        Lent(buffer)
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.0);
        if buffer.capacity() <= KEEP_BUFFER_BYTES {
            buffer.clear();
            BUFFERS.with(|buffers| {
                let mut buffers = buffers.borrow_mut();
                if buffers.len() < KEEP_BUFFERS {
                    buffers.push(buffer);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_requests_as_rfc_9112() {
        let mut out = Vec::new();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_static("127.0.0.1:8080"),
        );
        headers.insert("x-a", HeaderValue::from_static("1"));
        encode(
            &mut out,
            &Method::GET,
            &Uri::from_static("/a?b=c"),
            &headers,
            b"",
        );
        assert_eq!(
            out,
            b"GET /a?b=c HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-a: 1\r\n\r\n"
        );
        out.clear();
        encode(
            &mut out,
            &Method::POST,
            &Uri::from_static("/login"),
            &HeaderMap::new(),
            b"x=1",
        );
        assert_eq!(out, b"POST /login HTTP/1.1\r\ncontent-length: 3\r\n\r\nx=1");
        out.clear();
        encode(
            &mut out,
            &Method::POST,
            &Uri::from_static("/"),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(out, b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> Head {
        let parsed: Vec<_> = headers
            .iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        let (body, _, _) = scan(&parsed);
        Head {
            status,
            headers: HeaderMap::new(),
            body,
            keep_alive: true,
        }
    }

    #[test]
    fn reads_connection_and_framing_headers_in_one_pass() {
        let parse = |text: &str, headers: bool| {
            let keep = Keep {
                headers,
                ..Keep::default()
            };
            let (head, length) = parse_head(text.as_bytes(), keep).unwrap().unwrap();
            assert_eq!(length, text.len());
            head
        };
        let text = "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 3\r\nX-A: 1\r\n\r\n";
        let head = parse(text, false);
        assert!(!head.keep_alive);
        assert_eq!(head.body, BodyHeaders::Length(3));
        assert!(head.headers.is_empty(), "headers copied though not asked");
        let head = parse(text, true);
        assert_eq!(head.headers.len(), 3);
        assert_eq!(head.headers["x-a"], "1");
        let head = parse("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\n", false);
        assert!(head.keep_alive);
        assert_eq!(head.body, BodyHeaders::Neither);
        assert!(!parse("HTTP/1.0 200 OK\r\n\r\n", false).keep_alive);
        // Every Transfer-Encoding header counts, the last coding decides.
        let head = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            false,
        );
        assert_eq!(
            head.body,
            BodyHeaders::Codings {
                chunked_last: false
            }
        );
        assert_eq!(
            parse(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .body,
            BodyHeaders::Codings { chunked_last: true }
        );
        let cookies = Keep {
            set_cookie: true,
            ..Keep::default()
        };
        let (head, _) = parse_head(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-A: 1\r\nset-cookie: b=2\r\n\r\n",
            cookies,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.headers.len(), 2, "only Set-Cookie is kept for the jar");
        assert_eq!(head.headers.get_all(SET_COOKIE).iter().count(), 2);
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Len", Keep::default())
                .unwrap()
                .is_none()
        );
        assert!(parse_head(b"HTTP/1.1 2000 OK\r\n\r\n", Keep::default()).is_err());
    }

    #[test]
    fn frames_bodies_as_rfc_9112_section_6() {
        let get = Method::GET;
        assert_eq!(
            framing(&head(200, &[("content-length", "5")]), &get).unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            framing(
                &head(
                    200,
                    &[
                        ("transfer-encoding", "gzip, chunked"),
                        ("content-length", "5")
                    ]
                ),
                &get
            )
            .unwrap(),
            Framing::Chunked
        );
        assert_eq!(
            framing(&head(200, &[("transfer-encoding", "gzip")]), &get).unwrap(),
            Framing::Close
        );
        assert_eq!(framing(&head(200, &[]), &get).unwrap(), Framing::Close);
        assert_eq!(
            framing(&head(204, &[("content-length", "5")]), &get).unwrap(),
            Framing::Empty
        );
        assert_eq!(framing(&head(304, &[]), &get).unwrap(), Framing::Empty);
        assert_eq!(
            framing(&head(200, &[("content-length", "5")]), &Method::HEAD).unwrap(),
            Framing::Empty
        );
        assert_eq!(
            framing(
                &head(200, &[("content-length", "5"), ("content-length", "5")]),
                &get
            )
            .unwrap(),
            Framing::Length(5)
        );
        assert!(
            framing(
                &head(200, &[("content-length", "5"), ("content-length", "6")]),
                &get
            )
            .is_err()
        );
        assert!(framing(&head(200, &[("content-length", "-1")]), &get).is_err());
        assert!(framing(&head(200, &[("content-length", "5\x01")]), &get).is_err());
        // Transfer-Encoding overrides even an invalid Content-Length.
        assert_eq!(
            framing(
                &head(
                    200,
                    &[("content-length", "x"), ("transfer-encoding", "chunked")]
                ),
                &get
            )
            .unwrap(),
            Framing::Chunked
        );
    }

    /// A raw server on 127.0.0.1 that answers each request of one
    /// connection with the next canned bytes, then closes it.
    async fn canned(answers: Vec<&'static [u8]>) -> (Conn, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap() == 0 {
                        return seen;
                    }
                    request.push(byte[0]);
                }
                seen.push(String::from_utf8(request).unwrap());
                socket.write_all(answer).await.unwrap();
            }
            seen
        });
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        (Conn::new(cicada_tls::MaybeTls::Plain(stream)), server)
    }

    async fn get(conn: &mut Conn, method: &Method) -> Result<Exchange, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_static("t"));
        let keep = Keep {
            body: true,
            headers: true,
            set_cookie: true,
        };
        let uri = Uri::from_static("/x");
        let request = Request::Parts {
            uri: &uri,
            headers: &headers,
            body: b"",
        };
        conn.exchange(method, request, keep).await
    }

    #[tokio::test]
    async fn reads_every_framing_on_one_kept_alive_connection() {
        let (mut conn, server) = canned(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: t\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        let first = get(&mut conn, &Method::GET).await.unwrap();
        assert_eq!((first.status, first.bytes), (200, 5));
        assert_eq!(first.body.as_deref(), Some(&b"hello"[..]));
        assert!(!conn.is_closed());
        let chunked = get(&mut conn, &Method::GET).await.unwrap();
        assert_eq!((chunked.status, chunked.bytes), (201, 9));
        assert_eq!(chunked.body.as_deref(), Some(&b"wikipedia"[..]));
        assert_eq!(chunked.headers["x-a"], "1");
        let empty = get(&mut conn, &Method::GET).await.unwrap();
        assert_eq!((empty.status, empty.bytes), (204, 0));
        // A HEAD answer has no body, whatever its length says.
        let head = get(&mut conn, &Method::HEAD).await.unwrap();
        assert_eq!((head.status, head.bytes), (200, 0));
        assert!(!conn.is_closed());
        let last = get(&mut conn, &Method::GET).await.unwrap();
        assert_eq!(last.status, 404);
        assert!(conn.is_closed(), "connection: close ends the connection");
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0], "GET /x HTTP/1.1\r\nhost: t\r\n\r\n");
        assert!(seen[3].starts_with("HEAD /x HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn an_encoded_request_goes_out_as_it_is_and_shares_the_connection() {
        let (mut conn, server) = canned(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes",
        ])
        .await;
        let encoded = b"GET /static?a=1 HTTP/1.1\r\nhost: t\r\nx-k: v\r\n\r\n";
        let first = conn
            .exchange(&Method::GET, Request::Encoded(encoded), Keep::default())
            .await
            .unwrap();
        assert_eq!((first.status, first.bytes, first.body), (200, 2, None));
        // The same connection then carries a request encoded per exchange.
        let second = get(&mut conn, &Method::GET).await.unwrap();
        assert_eq!((second.status, second.bytes), (200, 3));
        let seen = server.await.unwrap();
        assert_eq!(seen[0].as_bytes(), encoded);
        assert_eq!(seen[1], "GET /x HTTP/1.1\r\nhost: t\r\n\r\n");
    }

    #[tokio::test]
    async fn close_delimited_and_broken_responses() {
        let (mut conn, _server) = canned(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil the end"]).await;
        let to_end = get(&mut conn, &Method::GET).await.unwrap();
        assert_eq!(to_end.body.as_deref(), Some(&b"until the end"[..]));
        assert!(conn.is_closed());

        let (mut conn, _server) =
            canned(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let error = get(&mut conn, &Method::GET).await.err().unwrap();
        assert_eq!(
            error.message,
            "connection closed 5 bytes before the end of the body"
        );
        assert!(!error.unsent);
        assert!(conn.is_closed());

        let (mut conn, _server) = canned(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ])
        .await;
        let error = get(&mut conn, &Method::GET).await.err().unwrap();
        assert_eq!(error.message, "invalid chunk size \"zz\"");

        let (mut conn, _server) = canned(vec![b"NOT HTTP\r\n\r\n"]).await;
        let error = get(&mut conn, &Method::GET).await.err().unwrap();
        assert!(
            error.message.starts_with("invalid response: "),
            "{}",
            error.message
        );

        // The request is read, then the connection closed without an answer.
        let (mut conn, _server) = canned(vec![b""]).await;
        let error = get(&mut conn, &Method::GET).await.err().unwrap();
        assert_eq!(error.message, "connection closed before a response");
    }

    #[tokio::test]
    async fn a_server_closing_an_idle_connection_is_seen_before_sending() {
        let (mut conn, server) =
            canned(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        get(&mut conn, &Method::GET).await.unwrap();
        server.await.unwrap();
        // Not checked while the connection was just used...
        assert!(!conn.is_closed());
        // ...but once it has been idle a while, the close is seen.
        conn.idle_since = Some(std::time::Instant::now() - IDLE_CHECK_AFTER);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(conn.is_closed());
    }
}
