//! A fake Observe collector: an HTTP/1.1 server on 127.0.0.1 that records
//! every request (path, headers, raw body) and answers 200, or the statuses it
//! was told to answer first. A small axum app on a free port (test-only:
//! `modelobs-testkit` is a dev-dependency), no TLS.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

use crate::storm::{Fault, Storm};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Vec<u8>,
    /// The status the fake answered; 0: a storm's black hole, never answered.
    pub answered: u16,
}

impl Received {
    /// The body's lines, gunzipped when `Content-Encoding: gzip`.
    pub fn lines(&self) -> Vec<String> {
        let text = if self.content_encoding.as_deref() == Some("gzip") {
            let mut out = String::new();
            flate2::read::GzDecoder::new(self.body.as_slice())
                .read_to_string(&mut out)
                .expect("a gzip body");
            out
        } else {
            String::from_utf8(self.body.clone()).expect("a UTF-8 body")
        };
        text.lines().map(str::to_string).collect()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    scripted: VecDeque<u16>,
    always: Option<u16>,
    storm: Option<Arc<Storm>>,
}

pub struct FakeObserve {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl Drop for FakeObserve {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeObserve {
    pub async fn start() -> Self {
        let (listener, addr) = crate::local_listener().await;
        let state = Arc::new(Mutex::new(State::default()));
        let server = crate::serve_app(
            listener,
            axum::Router::new()
                .fallback(serve)
                .with_state(state.clone()),
        );
        Self {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`: an `ObserveConfig` base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer the next requests with these statuses, then 200 again.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().scripted.extend(statuses);
    }

    /// Answer every request with `status` from now on.
    pub fn answer_always(&self, status: u16) {
        self.state.lock().unwrap().always = Some(status);
    }

    /// Draws every request from `storm` from now on, before the scripted
    /// statuses: a status fault is answered (with `Retry-After` when set), a
    /// black hole never.
    pub fn storm(&self, storm: Arc<Storm>) {
        self.state.lock().unwrap().storm = Some(storm);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

/// Records the request, answers the storm's fault or the next scripted
/// status (200 by default).
async fn serve(
    Shared(state): Shared<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (fault, status, retry_after) = {
        let mut s = state.lock().unwrap();
        let fault = s.storm.as_ref().and_then(|storm| storm.draw());
        let (status, retry_after) = match fault {
            Some(Fault::Status {
                status,
                retry_after,
            }) => (status, retry_after),
            Some(Fault::BlackHole) => (0, None),
            None => (s.scripted.pop_front().or(s.always).unwrap_or(200), None),
        };
        s.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            content_encoding: header("content-encoding"),
            body: body.to_vec(),
            answered: status,
        });
        (fault, status, retry_after)
    };
    if fault == Some(Fault::BlackHole) {
        std::future::pending::<()>().await;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match retry_after {
        Some(seconds) => (status, [("retry-after", seconds.to_string())]).into_response(),
        None => status.into_response(),
    }
}
