//! The sampler's S3 adapter for Labelbox: presigned GET URLs of captured
//! images (`modelobs_labelbox::Presigner`), so Labelbox can show them.

use std::time::Duration;

use modelobs_labelbox::{PresignError, Presigner};

/// Presigned S3 GET URLs of the data bucket.
pub struct S3Presigner {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

impl Presigner for S3Presigner {
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, PresignError> {
        let error = |reason: String| PresignError {
            key: key.to_string(),
            reason,
        };
        // SigV4 caps a presigned URL at 7 days; the config refuses longer.
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| error(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| error(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
        Ok(request.uri().to_string())
    }
}
