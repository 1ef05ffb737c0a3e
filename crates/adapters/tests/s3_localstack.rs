//! The real S3 adapter against LocalStack (tier 2: `make test-localstack`).
//!
//! Every test is `#[ignore]`d with the reason: `make test` runs them inside
//! `localstack/with-stack` with `--include-ignored`; without a stack they fail.
//! Every test writes under its own fresh prefix in `DATA_BUCKET`, so runs never see each other.

use aws_sdk_s3::Client;
use bytes::Bytes;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome};

/// The store and a prefix no earlier run used (the test fails without a stack).
async fn stack(test: &str) -> (S3Store, Client, String) {
    let bucket = modelobs_testkit::require_localstack().bucket;
    let client = S3Store::client_from_env().await;
    let prefix = format!("test-s3-localstack/{}/{test}/", uuid::Uuid::now_v7());
    (S3Store::new(client.clone(), bucket), client, prefix)
}

fn written(outcome: PutOutcome) -> String {
    match outcome {
        PutOutcome::Written { etag } => etag,
        PutOutcome::ConditionFailed => panic!("expected the put to be written"),
    }
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn put_then_get_round_trips_body_content_type_and_etag() {
    let (store, client, prefix) = stack("round_trip").await;
    let key = format!("{prefix}captures/a.json");
    let body = Bytes::from_static(br#"{"id":"a","boxes":[]}"#);

    // WHEN
    let etag = written(
        store
            .put(&key, body.clone(), "application/json", PutCondition::Always)
            .await
            .unwrap(),
    );

    // THEN
    let got = store.get(&key).await.unwrap().expect("the object exists");
    assert_eq!(got.body, body);
    assert_eq!(got.etag, etag, "get and put report the same ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "S3 ETags come quoted: {etag}"
    );
    let head = client
        .head_object()
        .bucket(store.bucket())
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/json"));
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn if_absent_on_an_existing_key_fails_and_leaves_the_object() {
    let (store, _, prefix) = stack("if_absent").await;
    let key = format!("{prefix}markers/done");
    // GIVEN an object written only-if-absent
    written(
        store
            .put(
                &key,
                Bytes::from_static(b"first"),
                "text/plain",
                PutCondition::IfAbsent,
            )
            .await
            .unwrap(),
    );

    // WHEN it is written again only-if-absent
    let again = store
        .put(
            &key,
            Bytes::from_static(b"second"),
            "text/plain",
            PutCondition::IfAbsent,
        )
        .await
        .unwrap();

    // THEN the condition fails and the first body stays
    assert_eq!(again, PutOutcome::ConditionFailed);
    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!(got.body, Bytes::from_static(b"first"));
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn if_match_writes_with_the_current_etag_and_fails_with_a_stale_one() {
    let (store, _, prefix) = stack("if_match").await;
    let key = format!("{prefix}counters/n");
    // GIVEN an object at version 1
    let v1 = written(
        store
            .put(
                &key,
                Bytes::from_static(b"1"),
                "text/plain",
                PutCondition::Always,
            )
            .await
            .unwrap(),
    );

    // WHEN it is swapped with the current ETag
    let v2 = written(
        store
            .put(
                &key,
                Bytes::from_static(b"2"),
                "text/plain",
                PutCondition::IfMatch(v1.clone()),
            )
            .await
            .unwrap(),
    );
    assert_ne!(v1, v2, "different bodies get different ETags");

    // THEN a swap with the now-stale ETag fails and version 2 stays
    let stale = store
        .put(
            &key,
            Bytes::from_static(b"3"),
            "text/plain",
            PutCondition::IfMatch(v1),
        )
        .await
        .unwrap();
    assert_eq!(stale, PutOutcome::ConditionFailed);
    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!((got.body, got.etag), (Bytes::from_static(b"2"), v2));
}

/// S3 answers If-Match on a missing key with 404 NoSuchKey, not 412. For the caller it is the
/// same thing (the object is not the version it read), and `MemoryStore` says ConditionFailed.
#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn if_match_on_a_missing_key_fails_the_condition() {
    let (store, _, prefix) = stack("if_match_missing").await;
    let key = format!("{prefix}counters/never-written");

    let outcome = store
        .put(
            &key,
            Bytes::from_static(b"1"),
            "text/plain",
            PutCondition::IfMatch("\"0\"".into()),
        )
        .await
        .unwrap();

    assert_eq!(outcome, PutOutcome::ConditionFailed);
    assert_eq!(store.get(&key).await.unwrap(), None, "nothing was written");
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn missing_keys_get_none_and_delete_is_idempotent() {
    let (store, _, prefix) = stack("missing").await;
    let key = format!("{prefix}gone.json");
    assert_eq!(store.get(&key).await.unwrap(), None, "never written");

    // GIVEN an object
    written(
        store
            .put(
                &key,
                Bytes::from_static(b"{}"),
                "application/json",
                PutCondition::Always,
            )
            .await
            .unwrap(),
    );
    // WHEN it is deleted
    store.delete(&key).await.unwrap();
    // THEN it is gone, and deleting it again is fine
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.delete(&key).await.unwrap();
    store
        .delete(&format!("{prefix}never-written"))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn awkward_keys_round_trip() {
    let (store, _, prefix) = stack("awkward_keys").await;
    let names = [
        "with space.jpg",
        "parens (1).jpg",
        "ünïcödé/猫 🐈.jpg",
        "plus+sign.jpg",
        "percent%2Fliteral.jpg",
        "query?a=b&c=d#frag.jpg",
        "tilde~!$'*,;=@.jpg",
        "double//slash.jpg",
    ];
    for name in names {
        let key = format!("{prefix}{name}");
        let body = Bytes::from(name.as_bytes().to_vec());
        written(
            store
                .put(&key, body.clone(), "image/jpeg", PutCondition::IfAbsent)
                .await
                .unwrap_or_else(|e| panic!("put {key:?}: {e}")),
        );
        let got = store
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("get {key:?}: {e}"))
            .unwrap_or_else(|| panic!("get {key:?}: missing after put"));
        assert_eq!(got.body, body, "{key:?}");
        store.delete(&key).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None, "{key:?} after delete");
    }
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn list_walks_every_page_in_key_order_and_stays_in_its_prefix() {
    let (store, _, prefix) = stack("list").await;
    // Two keys a page: five keys take three pages.
    let store = store.with_list_page_size(2);
    let mut etags = Vec::new();
    for name in ["w/3", "w/1", "w/5", "w/2", "w/4", "w0", "x/1"] {
        let etag = written(
            store
                .put(
                    &format!("{prefix}{name}"),
                    Bytes::from(name.as_bytes().to_vec()),
                    "text/plain",
                    PutCondition::Always,
                )
                .await
                .unwrap(),
        );
        etags.push((format!("{prefix}{name}"), etag));
    }

    // WHEN the prefix is listed
    let listed = store.list(&format!("{prefix}w/")).await.unwrap();

    // THEN all five come back, sorted, each with the ETag its put reported
    let keys: Vec<_> = listed.iter().map(|o| o.key.clone()).collect();
    let want: Vec<_> = (1..=5).map(|i| format!("{prefix}w/{i}")).collect();
    assert_eq!(keys, want);
    for o in &listed {
        let (_, etag) = etags.iter().find(|(k, _)| *k == o.key).unwrap();
        assert_eq!(&o.etag, etag, "{}", o.key);
        assert!(o.last_modified.is_some(), "{}", o.key);
    }
    assert!(
        store
            .list(&format!("{prefix}nothing-here/"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn a_conditional_delete_spares_a_replaced_object_and_copy_is_server_side() {
    let (store, _, prefix) = stack("delete_if_match").await;
    let key = format!("{prefix}incoming/cam 1.png");
    // GIVEN an object read at v1, then replaced by v2 (a client's new upload)
    let v1 = written(
        store
            .put(
                &key,
                Bytes::from_static(b"v1"),
                "image/png",
                PutCondition::Always,
            )
            .await
            .unwrap(),
    );
    let v2 = written(
        store
            .put(
                &key,
                Bytes::from_static(b"v2"),
                "image/png",
                PutCondition::Always,
            )
            .await
            .unwrap(),
    );
    assert_ne!(v1, v2);
    // WHEN v1's reader deletes it conditionally THEN v2 stays
    assert!(!store.delete_if_match(&key, &v1).await.unwrap());
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().body,
        Bytes::from_static(b"v2")
    );
    // AND a copy carries the bytes under the new key (a key with a space)
    let aside = format!("{prefix}incoming-rejected/cam 1.png");
    store.copy(&key, &aside).await.unwrap();
    assert_eq!(
        store.get(&aside).await.unwrap().unwrap().body,
        Bytes::from_static(b"v2")
    );
    // AND with the current ETag the delete happens
    assert!(store.delete_if_match(&key, &v2).await.unwrap());
    assert!(store.get(&key).await.unwrap().is_none());
}
