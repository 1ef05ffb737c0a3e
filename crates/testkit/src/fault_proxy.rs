//! A fault proxy in front of LocalStack: an HTTP/1.1 reverse proxy on
//! 127.0.0.1 that AWS SDK clients (S3, SQS) use as `AWS_ENDPOINT_URL`. It
//! forwards every request and fails a seeded share `rate` of them: before
//! forwarding (a 503 `SlowDown` or 500 `InternalError`, or no answer at all),
//! or after (the write happened, the answer is a 500). [`FaultProxy::outage`]
//! plays a LocalStack restart. A small axum app (test-only), no TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as Shared};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The largest request body the proxy reads (it buffers whole bodies).
const MAX_BODY: usize = 1 << 30;

/// What the proxy did. Every request served while up is counted once, at its
/// draw, in `forwarded`, `failed_before`, `failed_after` or `black_holes`;
/// `cut` counts the requests an outage answered 503 (those in flight, already
/// counted at their draw, and those arriving as it starts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Forwarded, upstream's answer returned (a 502 when upstream failed).
    pub forwarded: u64,
    /// Failed without reaching upstream.
    pub failed_before: u64,
    /// Forwarded, upstream's answer replaced by a 500.
    pub failed_after: u64,
    /// Never answered.
    pub black_holes: u64,
    pub cut: u64,
    pub outages: u64,
}

/// How the request speaks: the shape its error body takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    S3,
    /// AWS JSON 1.0 (`x-amz-target: AmazonSQS.*`), as the Rust SDK sends.
    SqsJson,
    /// The query protocol (`Action=...`).
    SqsQuery,
}

enum Plan {
    Forward,
    FailBefore { slow_down: bool },
    FailAfter,
    BlackHole,
}

struct State {
    /// Without a trailing `/`.
    upstream: String,
    client: reqwest::Client,
    rng: Mutex<ChaCha8Rng>,
    /// An `f64`'s bits.
    rate: AtomicU64,
    /// `false` while an outage is on: handlers in flight answer 503 at once.
    up: watch::Sender<bool>,
    forwarded: AtomicU64,
    failed_before: AtomicU64,
    failed_after: AtomicU64,
    black_holes: AtomicU64,
    cut: AtomicU64,
    outages: AtomicU64,
}

impl State {
    /// Half the faults before forwarding, half after (a `ReceiveMessage`
    /// only before: a lost receive hides its messages for the visibility
    /// timeout), a tenth of them black holes.
    fn plan(&self, receive: bool) -> Plan {
        let rate = f64::from_bits(self.rate.load(Ordering::Relaxed));
        let mut rng = self.rng.lock().expect("proxy rng");
        if rng.random::<f64>() >= rate {
            return Plan::Forward;
        }
        match rng.random::<f64>() {
            k if k < 0.10 => Plan::BlackHole,
            k if k < 0.55 || receive => Plan::FailBefore {
                slow_down: rng.random::<bool>(),
            },
            _ => Plan::FailAfter,
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Serving {
    /// Sent or dropped: stop accepting, close connections once answered.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    serving: tokio::sync::Mutex<Option<Serving>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.up.send_replace(false);
        // Dropping the sender shuts the server down.
        self.serving.get_mut().take();
    }
}

impl FaultProxy {
    /// Listens on a free port, forwarding to `upstream`
    /// (`http://127.0.0.1:4566`); fails a share `rate` (0.0..=1.0) of the
    /// requests, `seed` fixing which.
    pub async fn start(upstream: &str, seed: u64, rate: f64) -> Self {
        let (listener, addr) = crate::local_listener().await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("a reqwest client");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            rate: AtomicU64::new(rate.to_bits()),
            up: watch::Sender::new(true),
            forwarded: AtomicU64::new(0),
            failed_before: AtomicU64::new(0),
            failed_after: AtomicU64::new(0),
            black_holes: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        });
        let serving = serve(listener, state.clone());
        Self {
            addr,
            state,
            serving: tokio::sync::Mutex::new(Some(serving)),
        }
    }

    /// `http://127.0.0.1:<port>`: the `AWS_ENDPOINT_URL` to give the clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// 0.0: forward everything.
    pub fn set_rate(&self, rate: f64) {
        self.state.rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// LocalStack unreachable, as during its restart: requests in flight are
    /// answered 503 at once and their connections closed, the port refuses
    /// connections for `down_for`, then listens again on the same port.
    /// Returns when it listens again.
    pub async fn outage(&self, down_for: Duration) {
        let mut serving = self.serving.lock().await;
        State::count(&self.state.outages);
        self.state.up.send_replace(false);
        if let Some(Serving { stop, mut task }) = serving.take() {
            let _ = stop.send(());
            // The listener is closed as the signal arrives; this waits for
            // the connections, which close once their 503 is written.
            if tokio::time::timeout(Duration::from_secs(10), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        tokio::time::sleep(down_for).await;
        let listener = bind_again(self.addr).await;
        self.state.up.send_replace(true);
        *serving = Some(serve(listener, self.state.clone()));
    }

    pub fn counts(&self) -> ProxyCounts {
        let s = &self.state;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProxyCounts {
            forwarded: load(&s.forwarded),
            failed_before: load(&s.failed_before),
            failed_after: load(&s.failed_after),
            black_holes: load(&s.black_holes),
            cut: load(&s.cut),
            outages: load(&s.outages),
        }
    }
}

fn serve(listener: TcpListener, state: Arc<State>) -> Serving {
    let (stop, stopped) = oneshot::channel::<()>();
    let app = axum::Router::new().fallback(proxy).with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Serving { stop, task }
}

/// The same address again (`TcpListener::bind` sets `SO_REUSEADDR` on Unix,
/// so the old connections in `TIME_WAIT` don't hold the port).
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(_) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("fault proxy: binding {addr} again: {e}"),
        }
    }
}

/// Every request: cut by an outage, or planned and answered by `handle`.
async fn proxy(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    let protocol = protocol(request.headers(), request.uri());
    let mut up = state.up.subscribe();
    tokio::select! {
        biased;
        _ = up.wait_for(|up| !*up) => {
            State::count(&state.cut);
            error(protocol, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        }
        response = handle(&state, protocol, request) => response,
    }
}

async fn handle(state: &State, protocol: Protocol, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::BAD_REQUEST, "fault proxy: unreadable body").into_response();
    };
    let receive = is_receive(&parts.headers, &parts.uri, &body);
    match state.plan(receive) {
        Plan::Forward => {
            State::count(&state.forwarded);
            forward(state, &parts, body).await
        }
        Plan::FailBefore { slow_down } => {
            State::count(&state.failed_before);
            if slow_down && protocol == Protocol::S3 {
                error(protocol, StatusCode::SERVICE_UNAVAILABLE, "SlowDown")
            } else {
                error(protocol, StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        }
        Plan::FailAfter => {
            State::count(&state.failed_after);
            let _ = forward(state, &parts, body).await;
            error(protocol, StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        }
        Plan::BlackHole => {
            State::count(&state.black_holes);
            std::future::pending().await
        }
    }
}

/// Upstream's answer: status, end-to-end headers, body.
async fn forward(state: &State, parts: &Parts, body: Bytes) -> Response {
    let url = format!(
        "{}{}",
        state.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    for name in [header::HOST, header::CONTENT_LENGTH, header::EXPECT] {
        headers.remove(name);
    }
    let sent = state
        .client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let bad_gateway = |e: reqwest::Error| {
        let message = format!("fault proxy: upstream {}: {e}", state.upstream);
        (StatusCode::BAD_GATEWAY, message).into_response()
    };
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => return bad_gateway(e),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    let length = headers.remove(header::CONTENT_LENGTH);
    strip_hop_by_hop(&mut headers);
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) => return bad_gateway(e),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    // A HEAD answer's length is the object's (HeadObject), not its empty body's.
    if parts.method == Method::HEAD
        && let Some(length) = length
    {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length);
    }
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn protocol(headers: &HeaderMap, uri: &Uri) -> Protocol {
    let header = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if header(HeaderName::from_static("x-amz-target")).is_some_and(|t| t.starts_with("AmazonSQS."))
    {
        Protocol::SqsJson
    } else if header(header::CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
        || uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("Action=")))
    {
        Protocol::SqsQuery
    } else {
        Protocol::S3
    }
}

fn is_receive(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> bool {
    let action = |form: &str| form.split('&').any(|p| p == "Action=ReceiveMessage");
    headers
        .get("x-amz-target")
        .is_some_and(|t| t.as_bytes() == b"AmazonSQS.ReceiveMessage")
        || uri.query().is_some_and(action)
        || std::str::from_utf8(body).is_ok_and(action)
}

/// An injected error, in the shape the request's SDK parses.
fn error(protocol: Protocol, status: StatusCode, code: &str) -> Response {
    let (content_type, body) = match protocol {
        Protocol::S3 => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>injected</Message><RequestId>fault-proxy</RequestId></Error>"
            ),
        ),
        Protocol::SqsJson => (
            "application/x-amz-json-1.0",
            format!(r#"{{"__type":"{code}","message":"injected"}}"#),
        ),
        Protocol::SqsQuery => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>Receiver</Type>\
                 <Code>{code}</Code><Message>injected</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>"
            ),
        ),
    };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if protocol == Protocol::SqsJson {
        // awsQueryCompatible: the SDK takes the error code from here.
        let value = format!("{code};Receiver");
        response.headers_mut().insert(
            HeaderName::from_static("x-amzn-query-error"),
            HeaderValue::from_str(&value).expect("an ASCII code"),
        );
    }
    response
}
