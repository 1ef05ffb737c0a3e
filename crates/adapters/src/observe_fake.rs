//! A fake Observe collector: an HTTP/1.1 server on 127.0.0.1 that records
//! every request (path, headers, raw body) and answers 200, or the statuses it
//! was told to answer first. Test-only (feature `fake`): one request per
//! connection, no TLS.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Vec<u8>,
    /// The status the fake answered.
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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
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

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let status = {
        let mut s = state.lock().unwrap();
        let status = s.scripted.pop_front().or(s.always).unwrap_or(200);
        s.received.push(Received {
            method,
            path,
            authorization: header("authorization"),
            content_type: header("content-type"),
            content_encoding: header("content-encoding"),
            body,
            answered: status,
        });
        status
    };
    let response =
        format!("HTTP/1.1 {status} Fake\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
