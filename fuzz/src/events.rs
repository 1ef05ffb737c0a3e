//! S3 and SQS event bodies as the handlers receive them: the Lambda event
//! JSON (`aws_lambda_events`), the URL-encoded object keys in S3 events
//! (`keys::decode_event_key`) and the keys the handlers then parse
//! (`keys::parse_capture_record`, `keys::parse_window_touch`), and the
//! metrics queue's message body `{id, label_version}`, read by
//! `modelobs_pipeline::evaluate::handle` itself.
//!
//! Input: `<kind byte><bytes>`, the kind (mod 4) saying what the bytes are:
//! 0 an S3 event's JSON, 1 an object key as an S3 event carries it,
//! 2 an SQS event's JSON, 3 one metrics message body.

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{NaiveTime, TimeZone, Utc};
use modelobs_adapters::memory::MemoryStore;
use modelobs_core::keys;
use modelobs_pipeline::evaluate;
use modelobs_pipeline::sink::Discard;

pub const S3_EVENT: u8 = 0;
pub const EVENT_KEY: u8 = 1;
pub const SQS_EVENT: u8 = 2;
pub const MESSAGE_BODY: u8 = 3;

/// The input `run` takes, from its parts (for seeds).
pub fn input(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(bytes);
    out
}

pub fn run(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        S3_EVENT => s3_event(bytes),
        EVENT_KEY => event_key(&String::from_utf8_lossy(bytes)),
        SQS_EVENT => sqs_event(bytes),
        _ => {
            let mut message = SqsMessage::default();
            message.message_id = Some("fuzz".into());
            message.body = Some(String::from_utf8_lossy(bytes).into_owned());
            let mut event = SqsEvent::default();
            event.records = vec![message];
            metrics(event);
        }
    }
}

fn s3_event(bytes: &[u8]) {
    let Ok(event) = serde_json::from_slice::<S3Event>(bytes) else {
        return;
    };
    let again: S3Event = serde_json::from_slice(&serde_json::to_vec(&event).unwrap())
        .expect("a parsed S3 event, written back, parses");
    assert_eq!(again, event, "S3 event round trip");
    for record in &event.records {
        event_key(record.s3.object.key.as_deref().unwrap_or(""));
    }
}

/// What the sampler, the upload function and the rollup do with a key from an event.
fn event_key(raw: &str) {
    let Ok(key) = keys::decode_event_key(raw) else {
        return;
    };
    // Plain keys (no %, no +) are their own decoding.
    if !raw.contains(['%', '+']) {
        assert_eq!(key, raw);
    }
    if let Ok(parsed) = keys::parse_capture_record(&key) {
        let at = Utc.from_utc_datetime(
            &parsed
                .date
                .and_time(NaiveTime::from_hms_opt(parsed.hour, 0, 0).expect("hour < 24")),
        );
        let written = keys::capture_record(parsed.id, at);
        assert_eq!(
            keys::parse_capture_record(&written).ok(),
            Some(parsed),
            "capture record key {key:?} written back as {written:?}"
        );
    }
    if let Ok(touch) = keys::parse_window_touch(&key) {
        let last = key.rsplit('/').next().expect("split has one item");
        let written = keys::window_touch(&touch.window, &touch.model_version, last)
            .expect("segments the parser accepted are valid");
        assert_eq!(
            keys::parse_window_touch(&written).ok(),
            Some(touch),
            "window touch key {key:?} written back as {written:?}"
        );
    }
}

fn sqs_event(bytes: &[u8]) {
    let Ok(event) = serde_json::from_slice::<SqsEvent>(bytes) else {
        return;
    };
    let again: SqsEvent = serde_json::from_slice(&serde_json::to_vec(&event).unwrap())
        .expect("a parsed SQS event, written back, parses");
    assert_eq!(again, event, "SQS event round trip");
    metrics(event);
}

/// The metrics handler over an empty bucket: every message fails alone
/// (a bad body, or a capture that isn't there), none is lost, none panics.
fn metrics(event: SqsEvent) {
    let deps = evaluate::Deps {
        store: MemoryStore::new(),
        sink: Discard,
        now: Utc::now,
    };
    let n = event.records.len();
    let response = crate::block_on(evaluate::handle(event, &deps));
    assert_eq!(
        response.batch_item_failures.len(),
        n,
        "with nothing stored every message must fail"
    );
}
