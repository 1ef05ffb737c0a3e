//! The retry decorator: [`Retrying`] wraps an [`ObjectStore`] or a [`Queue`]
//! and retries its transient failures with the one [`RetryPolicy`]. Built
//! once in each function's `main.rs` (and in the CLI), so no handler writes
//! a retry loop; the SDK clients underneath retry nothing themselves
//! ([`crate::s3::S3Store::client_from_env`], [`crate::queue::SqsQueue::client_from_env`]).

use bytes::Bytes;
use modelobs_retry::{RetryPolicy, Retryable};

use crate::queue::{Queue, QueueError};
use crate::{ListedObject, ObjectStore, PutCondition, PutOutcome, StoreError, StoredObject};

impl Retryable for StoreError {
    fn is_transient(&self) -> bool {
        StoreError::is_transient(self)
    }
}

impl Retryable for QueueError {
    fn is_transient(&self) -> bool {
        self.transient
    }
}

/// `inner`, with every call retried under `policy`.
#[derive(Debug, Clone)]
pub struct Retrying<T> {
    inner: T,
    policy: RetryPolicy,
}

impl<T> Retrying<T> {
    pub fn new(inner: T, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// The wrapped store or queue (tests inspect and script it).
    pub fn inner(&self) -> &T {
        &self.inner
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }
}

/// Reads through to the wrapped value's own methods (a test scripts the
/// `MemoryStore` inside: `store.fail_next(2)`); the port's methods are the
/// decorator's.
impl<T> std::ops::Deref for Retrying<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<S: ObjectStore> ObjectStore for Retrying<S> {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.policy
            .run("put", || {
                self.inner
                    .put(key, body.clone(), content_type, condition.clone())
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.policy.run("delete", || self.inner.delete(key)).await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        self.policy.run("get", || self.inner.get(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        self.policy.run("list", || self.inner.list(prefix)).await
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool, StoreError> {
        self.policy
            .run("delete", || self.inner.delete_if_match(key, etag))
            .await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.policy.run("copy", || self.inner.copy(from, to)).await
    }
}

impl<Q: Queue> Queue for Retrying<Q> {
    async fn send(&self, body: String) -> Result<(), QueueError> {
        self.policy
            .run("send", || self.inner.send(body.clone()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::queue::MemoryQueue;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn transient_store_failures_are_retried_and_permanent_ones_are_not() {
        let store = Retrying::new(MemoryStore::new(), RetryPolicy::immediate(3));
        store.inner().fail_next(2);
        block_on(store.put(
            "k",
            Bytes::from_static(b"v"),
            "text/plain",
            PutCondition::Always,
        ))
        .expect("two transient failures, then the third try writes");
        assert!(block_on(store.get("k")).unwrap().is_some());

        store.inner().fail_next(3);
        assert!(block_on(store.get("k")).unwrap_err().is_transient());
    }

    #[test]
    fn a_failed_condition_is_an_answer_not_a_failure() {
        let store = Retrying::new(MemoryStore::new(), RetryPolicy::immediate(3));
        let put = |c| block_on(store.put("k", Bytes::from_static(b"v"), "text/plain", c));
        assert!(matches!(
            put(PutCondition::IfAbsent).unwrap(),
            PutOutcome::Written { .. }
        ));
        assert_eq!(
            put(PutCondition::IfAbsent).unwrap(),
            PutOutcome::ConditionFailed
        );
    }

    #[test]
    fn queue_sends_are_retried() {
        let queue = Retrying::new(MemoryQueue::new(), RetryPolicy::immediate(3));
        queue.inner().fail_next(2);
        block_on(queue.send("m".into())).unwrap();
        assert_eq!(queue.inner().sent(), vec!["m".to_string()]);
        queue.inner().fail_next(3);
        assert!(block_on(queue.send("n".into())).is_err());
    }
}
