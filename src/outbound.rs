//! Outbound HTTP to third-party APIs: one place that sets a timeout and a User-Agent and
//! reads the whole answer. Base URLs come from configuration, so tests point them at fakes.

use std::time::Duration;

use futures::future::{select, Either, LocalBoxFuture};
use worker::Method;

pub const USER_AGENT: &str = "integrations-service";
/// A call that says nothing about its work is a plain read.
pub const DEFAULT_TIMEOUT: Duration = Work::Read.timeout();

/// What a call does, which sizes how long it may take. A Worker has no wall-clock limit while
/// its caller waits, and a queue invocation has 15 minutes; a slow answer is abandoned here so a
/// slice fails (and retries) instead of hanging, but never before the provider could answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// One small request and answer (most API calls): 10 s.
    Read,
    /// Many requests in one (a batch of up to 50 messages) or a large body (a send with
    /// attachments): 30 s.
    Bulk,
    /// A large answer (a Gmail attachment of up to 25 MB, as base64 JSON): 60 s.
    Download,
}

impl Work {
    pub const fn timeout(self) -> Duration {
        match self {
            Work::Read => Duration::from_secs(10),
            Work::Bulk => Duration::from_secs(30),
            Work::Download => Duration::from_secs(60),
        }
    }
}
/// The largest upstream answer read by default (`UPSTREAM_MAX_RESPONSE_BYTES`): a 25 MB Gmail
/// attachment as base64 JSON fits; anything larger is refused while streaming, before it can
/// crowd the 128 MB isolate.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 36 * 1024 * 1024;

/// How a too-large answer's message starts (callers tell it apart from an unreachable upstream).
pub const TOO_LARGE: &str = "upstream answer larger than";

/// The isolate's configured cap (one isolate serves one deployment, so one value for all).
static MAX_RESPONSE_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(DEFAULT_MAX_RESPONSE_BYTES);

static CONFIGURED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reads `UPSTREAM_MAX_RESPONSE_BYTES` once per isolate (called at every event's start; a
/// deployment's variables do not change under a running isolate).
pub fn configure(env: &worker::Env) {
    if CONFIGURED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let max = crate::config::var(env, "UPSTREAM_MAX_RESPONSE_BYTES")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n >= 1024)
        .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    MAX_RESPONSE_BYTES.store(max, std::sync::atomic::Ordering::Relaxed);
}

/// A complete upstream answer (plain data, so services are unit-tested natively).
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Upstream {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug)]
pub enum OutboundError {
    Timeout,
    Network(String),
    /// The answer was larger than the cap (bytes); reading stopped there.
    TooLarge(u64),
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::Timeout => write!(f, "upstream timed out"),
            OutboundError::Network(e) => write!(f, "upstream unreachable: {e}"),
            OutboundError::TooLarge(max) => write!(f, "{TOO_LARGE} {max} bytes"),
        }
    }
}

/// How services reach the network: the Workers runtime's `fetch` in production, a fake in
/// native unit tests. Every call through it is one subrequest.
pub trait Http {
    fn send(&self, call: Call) -> LocalBoxFuture<'_, Result<Upstream, OutboundError>>;
}

/// The runtime's `fetch`.
pub struct Net;

impl Http for Net {
    fn send(&self, call: Call) -> LocalBoxFuture<'_, Result<Upstream, OutboundError>> {
        Box::pin(call.send())
    }
}

/// Counts the requests made through it (a sync slice's subrequest budget).
pub struct Counting<'a> {
    inner: &'a dyn Http,
    sent: std::cell::Cell<u32>,
}

impl<'a> Counting<'a> {
    pub fn new(inner: &'a dyn Http) -> Self {
        Counting { inner, sent: std::cell::Cell::new(0) }
    }

    pub fn sent(&self) -> u32 {
        self.sent.get()
    }

    /// Counts a subrequest made some other way (a Durable Object call).
    pub fn count_other(&self) {
        self.sent.set(self.sent.get() + 1);
    }
}

impl Http for Counting<'_> {
    fn send(&self, call: Call) -> LocalBoxFuture<'_, Result<Upstream, OutboundError>> {
        self.count_other();
        self.inner.send(call)
    }
}

/// An outbound request being built.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    timeout: Duration,
    max_bytes: Option<u64>,
    follow_redirects: bool,
}

impl Call {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Call {
            method,
            url: url.into(),
            headers: vec![("User-Agent", USER_AGENT.into())],
            body: None,
            timeout: DEFAULT_TIMEOUT,
            max_bytes: None,
            follow_redirects: true,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json_body(mut self, value: &serde_json::Value) -> Self {
        self.body = Some(value.to_string().into_bytes());
        self.header("Content-Type", "application/json")
    }

    pub fn form_body(mut self, pairs: &[(&str, &str)]) -> Self {
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        self.body = Some(encoded.into_bytes());
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    /// A body of any type (multipart uploads).
    pub fn raw_body(mut self, body: Vec<u8>, content_type: impl Into<String>) -> Self {
        self.body = Some(body);
        self.header("Content-Type", content_type)
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A 3xx is answered as it is, not followed: for URLs a user chose (a provider's base URL,
    /// a client's metadata document), whose host was checked but whose redirect would not be.
    pub fn no_redirects(mut self) -> Self {
        self.follow_redirects = false;
        self
    }

    /// The timeout that fits the call's work.
    pub fn work(self, work: Work) -> Self {
        self.timeout(work.timeout())
    }

    /// How long the call may take (tests check what a service chose).
    pub fn time_limit(&self) -> Duration {
        self.timeout
    }

    /// A smaller cap on the answer's size than the configured one (downloads with a limit).
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// A request header's value (tests inspect what a service sent).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sends the request; a slow upstream is abandoned after the timeout.
    pub async fn send(self) -> Result<Upstream, OutboundError> {
        use worker::{AbortController, Delay, Fetch, Headers, Request, RequestInit};
        // Runtime fetch errors can quote the URL, and Telegram URLs embed the bot token.
        let net = |e: worker::Error| OutboundError::Network(redact(&e.to_string(), &self.url));
        let headers = Headers::new();
        for (k, v) in &self.headers {
            headers.set(k, v).map_err(net)?;
        }
        let mut init = RequestInit::new();
        init.with_method(self.method).with_headers(headers);
        if !self.follow_redirects {
            init.with_redirect(worker::RequestRedirect::Manual);
        }
        if let Some(body) = self.body {
            init.with_body(Some(worker::js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        let req = Request::new_with_init(&self.url, &init).map_err(net)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let configured = MAX_RESPONSE_BYTES.load(std::sync::atomic::Ordering::Relaxed);
        let max = self.max_bytes.map_or(configured, |m| m.min(configured));
        let sending = Box::pin(async move {
            use futures::StreamExt;
            let mut resp = fetch.send_with_signal(&signal).await.map_err(net)?;
            let headers: Vec<(String, String)> =
                resp.headers().entries().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
            // Refused on the announced length first, then counted while streaming.
            let announced =
                headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse::<u64>().ok());
            if announced.is_some_and(|n| n > max) {
                return Err(OutboundError::TooLarge(max));
            }
            let status = resp.status_code();
            // A null body (204, 304, HEAD) has no stream to read.
            if matches!(resp.body(), worker::ResponseBody::Empty) {
                return Ok((status, headers, Vec::new()));
            }
            let mut body = Vec::with_capacity(announced.unwrap_or(0).min(max) as usize);
            let mut stream = resp.stream().map_err(net)?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(net)?;
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(OutboundError::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, headers, body))
        });
        match select(sending, Delay::from(self.timeout)).await {
            Either::Left((Ok((status, headers, body)), _)) => Ok(Upstream { status, headers, body }),
            Either::Left((Err(e), _)) => {
                if matches!(e, OutboundError::TooLarge(_)) {
                    controller.abort();
                }
                Err(e)
            }
            Either::Right(_) => {
                controller.abort();
                Err(OutboundError::Timeout)
            }
        }
    }
}

/// Removes the URL (and its path, which may carry a token) from an error message.
pub fn redact(message: &str, url: &str) -> String {
    let path = url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or("");
    let mut m = message.replace(url, "<url>");
    if path.len() > 1 {
        m = m.replace(path, "<path>");
    }
    m
}

/// Percent-encodes one URL path segment (`/`, `?`, `#`, spaces … are escaped).
pub fn segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

/// Whether a base URL's host is this machine or a private network: loopback, private,
/// link-local and unique-local addresses (IPv4-mapped ones too), `localhost` and `*.localhost`.
/// The key would be sent there by `test`, and the Worker would probe the network for whoever
/// stored it. (A public name that resolves to such an address is not caught: Workers has no DNS
/// lookup to ask.)
pub fn private_host(base_url: &str) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use url::Host;
    fn v4(ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        // 0/8 ("this host") reaches loopback on most systems.
        matches!(a, 0 | 10 | 127)
            || (a == 172 && (16..=31).contains(&b))
            || (a, b) == (192, 168)
            || (a, b) == (169, 254)
    }
    fn v6(ip: Ipv6Addr) -> bool {
        let first = ip.segments()[0];
        // ::1, ::, ::ffff:a.b.c.d and ::a.b.c.d carry an IPv4 address (or none) in their last 32 bits.
        ip.to_ipv4().is_some_and(v4) || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
    }
    match crate::http::parse_url(base_url).ok().as_ref().and_then(url::Url::host) {
        Some(Host::Ipv4(ip)) => v4(ip),
        Some(Host::Ipv6(ip)) => v6(ip),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, segment};

    #[test]
    fn errors_never_quote_urls() {
        let url = "https://api.telegram.org/bot123:SECRET/getMe";
        assert_eq!(redact(&format!("Fetch API cannot load: {url}"), url), "Fetch API cannot load: <url>");
        assert_eq!(redact("failed GET /bot123:SECRET/getMe", url), "failed GET <path>");
        assert_eq!(redact("connection refused", url), "connection refused");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("socket.io"), "socket.io");
        assert_eq!(segment("a/b c?#"), "a%2Fb%20c%3F%23");
        assert_eq!(segment("feature/x"), "feature%2Fx");
    }
}
