//! The storm, alone and in the fakes.

use std::sync::Arc;
use std::time::Duration;

use modelobs_testkit::fake_labelbox::{FakeLabelbox, Scripted};
use modelobs_testkit::fake_observe::FakeObserve;
use modelobs_testkit::storm::{Fault, Storm, StormCounts};

fn client() -> reqwest::Client {
    // Short: a black hole is waited out once per draw.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// The status a client sees for `fault`; `None`: it gave up.
fn expected(fault: Option<Fault>) -> (Option<u16>, Option<String>) {
    match fault {
        None => (Some(200), None),
        Some(Fault::Status {
            status,
            retry_after,
        }) => (Some(status), retry_after.map(|s| s.to_string())),
        Some(Fault::BlackHole) => (None, None),
    }
}

async fn seen(request: reqwest::RequestBuilder) -> (Option<u16>, Option<String>, String) {
    match request.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let retry_after = answer
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (Some(status), retry_after, answer.text().await.unwrap())
        }
        Err(e) if e.is_timeout() => (None, None, String::new()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_calm_storm_never_faults() {
    let storm = Storm::new(1, 0.0);
    assert!((0..1000).all(|_| storm.draw().is_none()));
    assert_eq!(storm.counts(), StormCounts::default());
}

#[test]
fn a_full_storm_always_faults_in_the_stated_shares() {
    let storm = Storm::new(2, 1.0);
    let faults: Vec<Fault> = (0..2000).map(|_| storm.draw().expect("a fault")).collect();
    let share = |f: &dyn Fn(&Fault) -> bool| faults.iter().filter(|x| f(x)).count() as f64 / 2000.0;
    let status =
        |s: u16| move |f: &Fault| matches!(f, Fault::Status { status, .. } if *status == s);
    assert!((0.35..0.45).contains(&share(&status(429))));
    assert!((0.15..0.25).contains(&share(&status(500))));
    assert!((0.20..0.30).contains(&share(&status(503))));
    assert!((0.10..0.20).contains(&share(&|f| *f == Fault::BlackHole)));
    assert!(faults.iter().all(|f| match f {
        Fault::Status {
            status: 429,
            retry_after,
        } => *retry_after == Some(1),
        Fault::Status { retry_after, .. } => retry_after.is_none(),
        Fault::BlackHole => true,
    }));
    let counts = storm.counts();
    assert_eq!(counts.statuses + counts.black_holes, 2000);
    assert_eq!(
        counts.black_holes,
        faults.iter().filter(|f| **f == Fault::BlackHole).count() as u64
    );
}

#[test]
fn the_rate_changes_from_another_thread_and_the_seed_fixes_the_draws() {
    let storm = Arc::new(Storm::new(3, 0.0));
    assert!(storm.draw().is_none());
    std::thread::spawn({
        let storm = storm.clone();
        move || storm.set_rate(1.0)
    })
    .join()
    .unwrap();
    assert!(storm.draw().is_some());

    let (a, b) = (Storm::new(9, 0.5), Storm::new(9, 0.5));
    let draws = |s: &Storm| (0..200).map(|_| s.draw()).collect::<Vec<_>>();
    assert_eq!(draws(&a), draws(&b));
}

#[tokio::test]
async fn fake_observe_answers_the_storms_statuses_and_records_them() {
    // GIVEN a fake under a full storm, and a twin storm to predict its draws
    let observe = FakeObserve::start().await;
    observe.storm(Arc::new(Storm::new(42, 1.0)));
    let twin = Storm::new(42, 1.0);
    let client = client();

    // WHEN requests come one after another
    let mut answered = Vec::new();
    for _ in 0..16 {
        let (status, retry_after, _) = seen(
            client
                .post(format!("{}/v1/http/modelobs", observe.base_url()))
                .body("{}\n"),
        )
        .await;
        // THEN each gets the drawn fault
        let fault = twin.draw();
        assert_eq!((status, retry_after), expected(fault), "{fault:?}");
        answered.push(status.unwrap_or(0));
    }
    assert!(answered.contains(&0) && answered.contains(&429));
    // AND every one was recorded with what it was answered
    let received: Vec<u16> = observe.received().iter().map(|r| r.answered).collect();
    assert_eq!(received, answered);

    // WHEN the storm calms, THEN the scripted statuses come back
    let calm = Arc::new(Storm::new(42, 0.0));
    observe.storm(calm);
    observe.answer_next(&[502]);
    assert_eq!(seen(client.post(observe.base_url())).await.0, Some(502));
    assert_eq!(seen(client.post(observe.base_url())).await.0, Some(200));
}

#[tokio::test]
async fn fake_labelbox_answers_the_storms_statuses_after_the_auth_check() {
    // GIVEN a fake under a full storm, with a scripted answer waiting
    let labelbox = FakeLabelbox::start("key").await;
    let storm = Arc::new(Storm::new(43, 1.0));
    labelbox.storm(storm.clone());
    labelbox.script(
        "*",
        Scripted::Status {
            status: 418,
            retry_after: None,
        },
    );
    let twin = Storm::new(43, 1.0);
    let client = client();
    let query = r#"{"query":"query GetDatasetsPyApi($name: String!) { datasets(where: {name: $name}) { id name } }","variables":{"name":"d"}}"#;
    let request = |key: &str| {
        client
            .post(labelbox.endpoint())
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(query)
    };

    // WHEN an unauthorized request comes, THEN it is refused without a draw
    assert_eq!(seen(request("wrong")).await.0, Some(401));
    assert_eq!(storm.counts(), StormCounts::default());

    // WHEN authorized requests come, THEN each gets the drawn fault
    for _ in 0..16 {
        let (status, retry_after, body) = seen(request("key")).await;
        let fault = twin.draw();
        assert_eq!((status, retry_after), expected(fault), "{fault:?}");
        if status.is_some() {
            assert_eq!(body, r#"{"message":"storm"}"#);
        }
    }
    // AND they were recorded
    assert_eq!(labelbox.requests().len(), 17);

    // WHEN the storm calms, THEN the scripted answer, then the real one
    storm.set_rate(0.0);
    assert_eq!(seen(request("key")).await.0, Some(418));
    let (status, _, body) = seen(request("key")).await;
    assert_eq!(status, Some(200));
    assert!(body.contains(r#""datasets":[]"#), "{body}");
}
