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

/// A store whose next reads of a key answer what was queued for it: a
/// handler that read before another wrote, replayed deterministically (the
/// race of two invocations, one of them slow).
#[allow(dead_code)] // not every test binary that includes this module races
pub struct StaleReads<S> {
    pub inner: S,
    queued: std::sync::Mutex<std::collections::HashMap<String, Vec<Option<Bytes>>>>,
}

#[allow(dead_code)]
impl<S> StaleReads<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            queued: Default::default(),
        }
    }

    /// The next read of `key` answers `body` (`None`: as if absent), once.
    pub fn answer_next(&self, key: &str, body: Option<Vec<u8>>) {
        self.queued
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .push(body.map(Bytes::from));
    }
}

impl<S: ObjectStore> ObjectStore for StaleReads<S> {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<modelobs_adapters::PutOutcome, modelobs_adapters::StoreError> {
        self.inner.put(key, body, content_type, condition).await
    }

    async fn delete(&self, key: &str) -> Result<(), modelobs_adapters::StoreError> {
        self.inner.delete(key).await
    }

    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<modelobs_adapters::StoredObject>, modelobs_adapters::StoreError> {
        let queued = {
            let mut q = self.queued.lock().unwrap();
            q.get_mut(key)
                .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        };
        match queued {
            // The ETag of what was read then: not the current one.
            Some(body) => Ok(body.map(|body| modelobs_adapters::StoredObject {
                body,
                etag: "\"stale\"".into(),
            })),
            None => self.inner.get(key).await,
        }
    }

    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<modelobs_adapters::ListedObject>, modelobs_adapters::StoreError> {
        self.inner.list(prefix).await
    }
}
