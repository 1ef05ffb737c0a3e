//! The Observe client against a fake collector on 127.0.0.1: what goes on the
//! wire (gzip NDJSON, bearer token, path) and which answers are retried.

use modelobs_adapters::RetryPolicy;
use modelobs_adapters::observe::{ObserveClient, ObserveConfig};
use modelobs_testkit::fake_observe::FakeObserve;

fn observations() -> Vec<String> {
    vec![
        r#"{"kind":"image_eval","ap50":0.5}"#.to_string(),
        r#"{"kind":"window_metrics","AP":0.25,"name":"ünïcödé"}"#.to_string(),
    ]
}

async fn client(fake: &FakeObserve, attempts: u32) -> ObserveClient {
    ObserveClient::new(&ObserveConfig::with_base_url(&fake.base_url(), "tok-123"))
        .unwrap()
        .with_retry(RetryPolicy::immediate(attempts))
}

#[tokio::test]
async fn sends_gzipped_ndjson_with_the_bearer_token() {
    let fake = FakeObserve::start().await;

    client(&fake, 3).await.send(&observations()).await.unwrap();

    let got = fake.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/http/model-observability");
    assert_eq!(r.authorization.as_deref(), Some("Bearer tok-123"));
    assert_eq!(r.content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert_eq!(r.lines(), observations());
}

#[tokio::test]
async fn a_503_and_a_429_are_retried() {
    let fake = FakeObserve::start().await;
    fake.answer_next(&[503, 429]);

    client(&fake, 3).await.send(&observations()).await.unwrap();

    let answered: Vec<u16> = fake.received().iter().map(|r| r.answered).collect();
    assert_eq!(answered, [503, 429, 200]);
    assert_eq!(fake.received()[2].lines(), observations());
}

#[tokio::test]
async fn gives_up_after_the_attempts_with_a_transient_error() {
    let fake = FakeObserve::start().await;
    fake.answer_always(500);

    let err = client(&fake, 3)
        .await
        .send(&observations())
        .await
        .unwrap_err();

    assert!(err.is_transient(), "{err}");
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn a_refused_body_is_not_retried() {
    let fake = FakeObserve::start().await;
    fake.answer_next(&[400]);

    let err = client(&fake, 3)
        .await
        .send(&observations())
        .await
        .unwrap_err();

    assert!(!err.is_transient(), "{err}");
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn a_closed_port_is_a_transient_failure() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = ObserveClient::new(&ObserveConfig::with_base_url(
        &format!("http://127.0.0.1:{port}"),
        "t",
    ))
    .unwrap()
    .with_retry(RetryPolicy::immediate(2));

    let err = client.send(&observations()).await.unwrap_err();

    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn nothing_to_send_sends_nothing() {
    let fake = FakeObserve::start().await;
    client(&fake, 3).await.send(&[]).await.unwrap();
    assert!(fake.received().is_empty());
}
