//! [`ObjectStore`] on Amazon S3 (or LocalStack, through `AWS_ENDPOINT_URL`).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::{ListedObject, ObjectStore, PutCondition, PutOutcome, StoreError, StoredObject};

#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// `MaxKeys` per ListObjectsV2 page; `None`: S3's default (1000).
    list_page_size: Option<i32>,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            list_page_size: None,
        }
    }

    /// Smaller listing pages: lets tests walk several pages without 1000 keys.
    pub fn with_list_page_size(mut self, keys: i32) -> Self {
        self.list_page_size = Some(keys);
        self
    }

    /// The credentials a client from the environment signs with: a presigner
    /// reads their expiry from it (an SDK client no longer hands out its
    /// provider). `None`: no credentials configured.
    pub async fn credentials_from_env() -> Option<aws_sdk_s3::config::SharedCredentialsProvider> {
        aws_config::load_from_env().await.credentials_provider()
    }

    /// A client from the environment, with the SDK's own retries off: the
    /// [`Retrying`](crate::retrying::Retrying) decorator is the one retry
    /// layer (see [`classify`] for what it retries). With an endpoint
    /// override (LocalStack) it uses path-style addressing and only sends
    /// checksums when required, which emulators handle reliably.
    pub async fn client_from_env() -> aws_sdk_s3::Client {
        let shared = aws_config::load_from_env().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            // The SDK sets no limit on an attempt: a black-holed endpoint would
            // hold a call until Lambda kills the function. 15 s covers any
            // object the functions read or write (images are a few MB).
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(std::time::Duration::from_secs(15))
                    .build(),
            );
        if shared.endpoint_url().is_some() {
            config = config
                .force_path_style(true)
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                );
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// Sorts an SDK failure into retry-worthy or not, keeping the service's words.
fn classify<E>(op: &str, key: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let what = format!(
        "{op} {key}: {}",
        err.as_service_error()
            .and_then(|e| e.message().or(e.code()).map(str::to_string))
            .unwrap_or_else(|| format!("{err:?}"))
    );
    let transient = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        // 409: a conditional write raced another one; 429 and 5xx: throttled or down.
        SdkError::ServiceError(se) => matches!(se.raw().status().as_u16(), 409 | 429 | 500..),
        _ => false,
    };
    if transient {
        StoreError::Transient(what)
    } else {
        StoreError::Permanent(what)
    }
}

/// What CopySource must escape: everything but the unreserved characters and `/`.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl ObjectStore for S3Store {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        // S3 answers If-Match on a missing key with 404, not 412: both mean
        // the condition did not hold.
        let if_match = matches!(condition, PutCondition::IfMatch(_));
        req = match condition {
            PutCondition::Always => req,
            PutCondition::IfAbsent => req.if_none_match("*"),
            PutCondition::IfMatch(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(out) => Ok(PutOutcome::Written {
                etag: out.e_tag().unwrap_or_default().to_string(),
            }),
            Err(SdkError::ServiceError(se))
                if se.raw().status().as_u16() == 412
                    || (if_match && se.raw().status().as_u16() == 404) =>
            {
                Ok(PutOutcome::ConditionFailed)
            }
            Err(e) => Err(classify("put", key, &e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("delete", key, &e))
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool, StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(etag)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            // 412: the ETag changed; 404: it is gone.
            Err(SdkError::ServiceError(se)) if matches!(se.raw().status().as_u16(), 412 | 404) => {
                Ok(false)
            }
            // 501: an S3 without conditional deletes (LocalStack 4; AWS has them
            // since 2024): read, compare and delete, with the window between.
            Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 501 => {
                tracing::debug!(
                    key,
                    "conditional delete not implemented here; compared first"
                );
                match self.get(key).await? {
                    Some(o) if o.etag == etag => self.delete(key).await.map(|()| true),
                    _ => Ok(false),
                }
            }
            Err(e) => Err(classify("delete", key, &e)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let source = format!(
            "{}/{}",
            self.bucket,
            percent_encoding::utf8_percent_encode(from, COPY_SOURCE)
        );
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("copy", from, &e))
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(se)) if se.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(classify("get", key, &e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Transient(format!("get {key}: reading body: {e}")))?
            .into_bytes();
        Ok(Some(StoredObject { body, etag }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_max_keys(self.list_page_size)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("list", prefix, &e))?;
            listed.extend(page.contents().iter().filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    etag: o.e_tag().unwrap_or_default().to_string(),
                    last_modified: o
                        .last_modified()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                })
            }));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(listed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! `classify` decides every S3 retry in the system (through `Retrying`);
    //! LocalStack never throttles or fails, so its answers are built here the
    //! way the SDK hands them over: a service error with its raw response, a
    //! timeout, a dispatch (connection) failure.

    use super::*;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    fn service(status: u16, code: &str) -> SdkError<PutObjectError, HttpResponse> {
        let error = PutObjectError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message(format!("{code} from S3"))
                .build(),
        );
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(error, raw)
    }

    fn transient(err: &SdkError<PutObjectError, HttpResponse>) -> bool {
        classify("put", "captures/x.json", err).is_transient()
    }

    #[test]
    fn throttling_server_errors_and_raced_conditions_are_transient() {
        assert!(transient(&service(429, "TooManyRequests")));
        assert!(transient(&service(500, "InternalError")));
        assert!(transient(&service(503, "SlowDown")));
        // A conditional write that raced another one: try again.
        assert!(transient(&service(409, "ConditionalRequestConflict")));
    }

    #[test]
    fn refusals_are_permanent() {
        assert!(!transient(&service(403, "AccessDenied")));
        assert!(!transient(&service(404, "NoSuchBucket")));
        assert!(!transient(&service(400, "InvalidRequest")));
        // A failed precondition reaching classify (not a put, which answers
        // ConditionFailed before) is not worth retrying either.
        assert!(!transient(&service(412, "PreconditionFailed")));
    }

    #[test]
    fn timeouts_and_lost_connections_are_transient() {
        let timeout: SdkError<PutObjectError, HttpResponse> =
            SdkError::timeout_error("operation timed out after 3s");
        assert!(transient(&timeout));
        let lost: SdkError<PutObjectError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert!(transient(&lost));
    }

    #[test]
    fn the_message_keeps_the_operation_the_key_and_the_services_words() {
        let e = classify("get", "labels/abc.json", &service(503, "SlowDown"));
        let text = e.to_string();
        assert!(text.contains("get labels/abc.json"), "{text}");
        assert!(text.contains("SlowDown from S3"), "{text}");
    }
}
