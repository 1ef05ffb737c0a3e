//! An in-memory object store: the fake for handler tests and local tools.
//! It can be told to fail, to test what handlers do when storage is down.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;

use crate::{ListedObject, ObjectStore, PutCondition, PutOutcome, StoreError, StoredObject};

#[derive(Default)]
pub struct MemoryStore {
    /// Object, content type, when it was written.
    objects: Mutex<BTreeMap<String, (StoredObject, String, SystemTime)>>,
    next_etag: AtomicU64,
    /// The next this-many calls fail with a transient error.
    failures: AtomicU32,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` calls fail as if S3 were unavailable.
    pub fn fail_next(&self, n: u32) {
        self.failures.store(n, Ordering::SeqCst);
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    pub fn body(&self, key: &str) -> Option<Bytes> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(o, _, _)| o.body.clone())
    }

    pub fn content_type(&self, key: &str) -> Option<String> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(_, ct, _)| ct.clone())
    }

    fn injected_failure(&self) -> Result<(), StoreError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Transient("injected failure".into()));
        }
        Ok(())
    }
}

impl ObjectStore for MemoryStore {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.injected_failure()?;
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(key).map(|(o, _, _)| o.etag.as_str());
        let allowed = match (&condition, current) {
            (PutCondition::Always, _) => true,
            (PutCondition::IfAbsent, existing) => existing.is_none(),
            (PutCondition::IfMatch(want), Some(have)) => want == have,
            (PutCondition::IfMatch(_), None) => false,
        };
        if !allowed {
            return Ok(PutOutcome::ConditionFailed);
        }
        let etag = format!("\"{}\"", self.next_etag.fetch_add(1, Ordering::SeqCst));
        objects.insert(
            key.to_string(),
            (
                StoredObject {
                    body,
                    etag: etag.clone(),
                },
                content_type.to_string(),
                SystemTime::now(),
            ),
        );
        Ok(PutOutcome::Written { etag })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.injected_failure()?;
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool, StoreError> {
        self.injected_failure()?;
        let mut objects = self.objects.lock().unwrap();
        if objects.get(key).is_some_and(|(o, _, _)| o.etag == etag) {
            objects.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        self.injected_failure()?;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(o, _, _)| o.clone()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        self.injected_failure()?;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (o, _, at))| ListedObject {
                key: k.clone(),
                etag: o.etag.clone(),
                last_modified: Some(*at),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conditional_deletes_and_copies_behave_like_s3() {
        let s = MemoryStore::new();
        let Ok(PutOutcome::Written { etag: old }) = s
            .put("k", Bytes::from_static(b"1"), "t", PutCondition::Always)
            .await
        else {
            panic!("written")
        };
        s.put("k", Bytes::from_static(b"2"), "t", PutCondition::Always)
            .await
            .unwrap();
        assert!(
            !s.delete_if_match("k", &old).await.unwrap(),
            "replaced since"
        );
        let current = s.get("k").await.unwrap().unwrap();
        assert_eq!(current.body, Bytes::from_static(b"2"));
        s.copy("k", "k2").await.unwrap();
        assert_eq!(s.body("k2"), Some(Bytes::from_static(b"2")));
        assert!(s.delete_if_match("k", &current.etag).await.unwrap());
        assert!(s.body("k").is_none());
        assert!(
            !s.delete_if_match("k", &current.etag).await.unwrap(),
            "gone"
        );
    }

    #[tokio::test]
    async fn conditional_puts_behave_like_s3() {
        let s = MemoryStore::new();
        let first = s
            .put(
                "k",
                Bytes::from_static(b"1"),
                "text/plain",
                PutCondition::IfAbsent,
            )
            .await
            .unwrap();
        let PutOutcome::Written { etag } = first else {
            panic!("first put is written")
        };
        let again = s
            .put(
                "k",
                Bytes::from_static(b"2"),
                "text/plain",
                PutCondition::IfAbsent,
            )
            .await
            .unwrap();
        assert_eq!(again, PutOutcome::ConditionFailed);
        let stale = s
            .put(
                "k",
                Bytes::from_static(b"3"),
                "text/plain",
                PutCondition::IfMatch("\"x\"".into()),
            )
            .await
            .unwrap();
        assert_eq!(stale, PutOutcome::ConditionFailed);
        let swap = s
            .put(
                "k",
                Bytes::from_static(b"4"),
                "text/plain",
                PutCondition::IfMatch(etag),
            )
            .await
            .unwrap();
        assert!(matches!(swap, PutOutcome::Written { .. }));
        assert_eq!(s.body("k").unwrap(), Bytes::from_static(b"4"));
    }

    #[tokio::test]
    async fn list_is_sorted_and_stays_inside_its_prefix() {
        let s = MemoryStore::new();
        for key in ["a/2", "a/1", "a0", "a/1/x", "b/1", "a"] {
            s.put(key, Bytes::new(), "text/plain", PutCondition::Always)
                .await
                .unwrap();
        }
        let listed = s.list("a/").await.unwrap();
        let keys: Vec<_> = listed.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a/1", "a/1/x", "a/2"]);
        assert_eq!(
            listed[2].etag,
            s.get("a/2").await.unwrap().unwrap().etag,
            "the listing's ETag is the object's"
        );
        assert!(s.list("c/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn injected_failures_are_transient_and_run_out() {
        let s = MemoryStore::new();
        s.fail_next(1);
        assert!(s.get("k").await.unwrap_err().is_transient());
        assert_eq!(s.get("k").await.unwrap(), None);
    }
}
