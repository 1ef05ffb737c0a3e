//! The fault proxy against an axum stub standing in for LocalStack.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use modelobs_testkit::fault_proxy::{FaultProxy, ProxyCounts};

/// One request as the stub received it.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Default)]
struct Upstream {
    hits: Mutex<Vec<Hit>>,
}

struct Stub {
    endpoint: String,
    upstream: Arc<Upstream>,
    _server: tokio::task::JoinHandle<()>,
}

impl Stub {
    fn hits(&self) -> Vec<Hit> {
        self.upstream.hits.lock().unwrap().clone()
    }
}

/// Records every request; `/slow` answers after 30 s (a long poll), a HEAD
/// answers a `content-length` of 1234, anything else 201 with a body naming
/// the request.
async fn stub() -> Stub {
    async fn answer(
        State(upstream): State<Arc<Upstream>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        upstream.hits.lock().unwrap().push(Hit {
            method: method.to_string(),
            path_and_query: uri.path_and_query().unwrap().to_string(),
            headers,
            body: body.to_vec(),
        });
        if uri.path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if method == Method::HEAD {
            return (
                StatusCode::OK,
                [("content-length", "1234"), ("etag", "\"e\"")],
            )
                .into_response();
        }
        (
            StatusCode::CREATED,
            [("x-upstream", "stub"), ("content-type", "text/plain")],
            format!("{method} {}", uri.path()),
        )
            .into_response()
    }
    let (listener, addr) = modelobs_testkit::local_listener().await;
    let upstream = Arc::new(Upstream::default());
    let server = modelobs_testkit::serve_app(
        listener,
        axum::Router::new()
            .fallback(answer)
            .with_state(upstream.clone()),
    );
    Stub {
        endpoint: format!("http://{addr}"),
        upstream,
        _server: server,
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// `n` requests at once; each answer's status, or `None` when the client gave
/// up after `timeout`.
async fn send_all(
    proxy: &FaultProxy,
    n: usize,
    timeout: Duration,
    build: impl Fn(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder,
) -> Vec<Option<u16>> {
    let client = client(timeout);
    let endpoint = proxy.endpoint();
    let requests = (0..n).map(|i| {
        let request = build(&client, &endpoint, i);
        async move {
            match request.send().await {
                Ok(answer) => Some(answer.status().as_u16()),
                Err(e) if e.is_timeout() => None,
                Err(e) => panic!("request {i}: {e}"),
            }
        }
    });
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn forwards_method_path_query_headers_and_body_and_returns_the_answer() {
    // GIVEN a calm proxy in front of the stub
    let upstream = stub().await;
    let proxy = FaultProxy::start(&upstream.endpoint, 1, 0.0).await;

    // WHEN a signed-looking PUT goes through it
    let answer = client(Duration::from_secs(10))
        .put(format!(
            "{}/modelobs-data/captures/a%20b.json?x-id=PutObject",
            proxy.endpoint()
        ))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=test/...")
        .header("x-amz-date", "20250101T000000Z")
        .header("proxy-authorization", "secret")
        .header("te", "trailers")
        .body("the object")
        .send()
        .await
        .unwrap();

    // THEN upstream saw the request as sent, less the hop-by-hop headers
    let hits = upstream.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, "PUT");
    assert_eq!(
        hit.path_and_query,
        "/modelobs-data/captures/a%20b.json?x-id=PutObject"
    );
    assert_eq!(hit.body, b"the object");
    assert_eq!(
        hit.headers["authorization"],
        "AWS4-HMAC-SHA256 Credential=test/..."
    );
    assert_eq!(hit.headers["x-amz-date"], "20250101T000000Z");
    assert_eq!(hit.headers["content-length"], "10");
    assert!(hit.headers.get("proxy-authorization").is_none());
    assert!(hit.headers.get("te").is_none());
    assert_eq!(
        hit.headers["host"],
        upstream.endpoint.trim_start_matches("http://")
    );
    // AND the client got upstream's answer
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["x-upstream"], "stub");
    assert_eq!(
        answer.text().await.unwrap(),
        "PUT /modelobs-data/captures/a%20b.json"
    );

    // WHEN a HEAD goes through, THEN its length is upstream's, not the empty body's
    let head = client(Duration::from_secs(10))
        .head(format!("{}/modelobs-data/captures/x", proxy.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "1234");
    assert_eq!(head.headers()["etag"], "\"e\"");

    assert_eq!(
        proxy.counts(),
        ProxyCounts {
            forwarded: 2,
            ..ProxyCounts::default()
        }
    );
}

#[tokio::test]
async fn at_rate_one_every_request_fails_and_only_after_faults_reach_upstream() {
    // GIVEN a proxy failing everything
    let upstream = stub().await;
    let proxy = FaultProxy::start(&upstream.endpoint, 7, 1.0).await;

    // WHEN S3 and SQS requests go through it
    let n = 120;
    let statuses = send_all(&proxy, n, Duration::from_secs(2), |c, endpoint, i| {
        if i % 2 == 0 {
            c.put(format!("{endpoint}/bucket/key-{i}")).body("x")
        } else {
            c.post(format!("{endpoint}/"))
                .header("x-amz-target", "AmazonSQS.SendMessage")
                .header("content-type", "application/x-amz-json-1.0")
                .body("{}")
        }
    })
    .await;

    // THEN none was forwarded, and the counts add up to the requests
    let counts = proxy.counts();
    assert_eq!(counts.forwarded, 0, "{counts:?}");
    assert_eq!(
        counts.failed_before + counts.failed_after + counts.black_holes,
        n as u64,
        "{counts:?}"
    );
    assert!(counts.failed_before > 0 && counts.failed_after > 0 && counts.black_holes > 0);
    // AND the black holes never answered, the rest answered 5xx
    let unanswered = statuses.iter().filter(|s| s.is_none()).count() as u64;
    assert_eq!(unanswered, counts.black_holes, "{statuses:?}");
    for status in statuses.iter().flatten() {
        assert!([500, 503].contains(status), "{statuses:?}");
    }
    // AND exactly the after-faults reached upstream
    assert_eq!(upstream.hits().len() as u64, counts.failed_after);
}

#[tokio::test]
async fn the_error_bodies_are_what_each_sdk_parses() {
    let upstream = stub().await;
    let proxy = FaultProxy::start(&upstream.endpoint, 3, 1.0).await;
    // Short: a black hole is waited out once per draw.
    let client = client(Duration::from_secs(1));
    let (mut s3, mut sqs) = (0, 0);
    for i in 0..40 {
        let request = if i % 2 == 0 {
            client.get(format!("{}/bucket/key", proxy.endpoint()))
        } else {
            client
                .post(format!("{}/", proxy.endpoint()))
                .header("x-amz-target", "AmazonSQS.DeleteMessage")
                .body("{}")
        };
        let Ok(answer) = request.send().await else {
            continue; // a black hole
        };
        let status = answer.status().as_u16();
        let content_type = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let body = answer.text().await.unwrap();
        if i % 2 == 0 {
            s3 += 1;
            assert_eq!(content_type, "application/xml");
            match status {
                503 => assert!(body.contains("<Code>SlowDown</Code>"), "{body}"),
                500 => assert!(body.contains("<Code>InternalError</Code>"), "{body}"),
                other => panic!("S3 got {other}"),
            }
        } else {
            sqs += 1;
            assert_eq!(status, 500);
            assert_eq!(content_type, "application/x-amz-json-1.0");
            assert_eq!(body, r#"{"__type":"InternalError","message":"injected"}"#);
        }
    }
    assert!(s3 > 0 && sqs > 0);
}

#[tokio::test]
async fn a_receive_message_never_gets_an_after_fault() {
    // GIVEN a proxy failing everything
    let upstream = stub().await;
    let proxy = FaultProxy::start(&upstream.endpoint, 11, 1.0).await;

    // WHEN receives go through it, in JSON and in the query protocol
    let n = 90;
    send_all(&proxy, n, Duration::from_secs(2), |c, endpoint, i| {
        match i % 3 {
            0 => c
                .post(format!("{endpoint}/"))
                .header("x-amz-target", "AmazonSQS.ReceiveMessage")
                .body(r#"{"QueueUrl":"q","WaitTimeSeconds":20}"#),
            1 => c
                .post(format!("{endpoint}/000000000000/q"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("Action=ReceiveMessage&WaitTimeSeconds=20"),
            _ => c.get(format!(
                "{endpoint}/000000000000/q?Action=ReceiveMessage&MaxNumberOfMessages=10"
            )),
        }
    })
    .await;

    // THEN every fault came before forwarding: none reached upstream
    let counts = proxy.counts();
    assert_eq!(counts.failed_after, 0, "{counts:?}");
    assert_eq!(counts.failed_before + counts.black_holes, n as u64);
    assert!(upstream.hits().is_empty());
}

#[tokio::test]
async fn an_outage_cuts_requests_in_flight_refuses_connections_then_serves_again() {
    // GIVEN a calm proxy with a long poll in flight
    let upstream = stub().await;
    let proxy = Arc::new(FaultProxy::start(&upstream.endpoint, 5, 0.0).await);
    let endpoint = proxy.endpoint();
    let addr = endpoint.trim_start_matches("http://").to_string();
    let in_flight = tokio::spawn(
        client(Duration::from_secs(25))
            .get(format!("{endpoint}/slow"))
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while upstream.hits().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the long poll reaches upstream");

    // WHEN LocalStack "restarts"
    let outage = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.outage(Duration::from_secs(3)).await }
    });

    // THEN the long poll is cut with a 503 (well before its 30 s)
    let cut = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("cut, not waited out")
        .unwrap()
        .expect("an answer, not a dropped connection");
    assert_eq!(cut.status(), 503);
    // AND connecting is refused while it lasts
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tokio::net::TcpStream::connect(&addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) => panic!("connect: {e}"),
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "connections were never refused");

    // WHEN it is over, THEN requests go through again on the same endpoint
    tokio::time::timeout(Duration::from_secs(20), outage)
        .await
        .expect("the outage ends")
        .unwrap();
    assert_eq!(proxy.endpoint(), endpoint);
    let answer = client(Duration::from_secs(10))
        .get(format!("{endpoint}/bucket/key"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let counts = proxy.counts();
    assert_eq!(counts.outages, 1);
    assert_eq!(counts.cut, 1);
    assert_eq!(counts.forwarded, 2);
}
