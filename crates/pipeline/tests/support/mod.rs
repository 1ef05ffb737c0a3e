//! What the pipeline's tests share.

use bytes::Bytes;
use modelobs_adapters::{ObjectStore, PutCondition};

/// Writes `body` at `key`, whatever is there.
pub async fn put(store: &impl ObjectStore, key: &str, body: Vec<u8>) {
    store
        .put(
            key,
            Bytes::from(body),
            "application/json",
            PutCondition::Always,
        )
        .await
        .unwrap();
}
