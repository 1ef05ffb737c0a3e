//! How Labelbox reaches a captured image (`LABELBOX_IMAGE_ACCESS`): the data
//! row's `row_data` URL.
//!
//! - **delegated** (the template's default): the object's plain URL,
//!   `https://<bucket>.s3.<region>.amazonaws.com/<key>`. Labelbox reads it
//!   through IAM delegated access (the role `template.yaml` makes for its
//!   AWS integration, attached to the dataset by `modelobs labelbox setup`),
//!   so it never expires. Labelbox refuses `s3://` URLs.
//! - **presigned** (tryouts, and unset in local runs): a presigned GET URL.
//!   It dies with the credentials that signed it: in Lambda those are the
//!   role's session credentials, valid for hours, not the 7 days SigV4
//!   allows. The lifetime is cut to what the credentials allow, with a
//!   warning.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{ProvideCredentials, SharedCredentialsProvider};
use modelobs_labelbox::{PresignError, Presigner};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// One of the two, chosen by configuration.
pub enum ImageUrls {
    Delegated(DelegatedUrls),
    Presigned(S3Presigner),
}

impl Presigner for ImageUrls {
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, PresignError> {
        match self {
            Self::Delegated(urls) => Ok(urls.url(key)),
            Self::Presigned(presigner) => presigner.presign_get(key, expires_in).await,
        }
    }
}

/// Plain virtual-hosted-style object URLs.
#[derive(Debug, Clone)]
pub struct DelegatedUrls {
    pub bucket: String,
    pub region: String,
}

/// What stays as it is in a key's path: S3's unreserved characters and `/`
/// (S3 object key naming: everything else is percent-encoded).
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

impl DelegatedUrls {
    pub fn url(&self, key: &str) -> String {
        format!(
            "https://{}.s3.{}.amazonaws.com/{}",
            self.bucket,
            self.region,
            utf8_percent_encode(key, KEY_PATH)
        )
    }
}

/// Presigned S3 GET URLs of the data bucket.
pub struct S3Presigner {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// The credentials `client` signs with, to learn when they expire
    /// (`S3Store::credentials_from_env`); `None`: not known.
    pub credentials: Option<SharedCredentialsProvider>,
}

/// The URL must still work this long before its credentials expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The longest a role session lasts (IAM's maximum session duration): the
/// bound on temporary credentials that do not say when they expire, such as
/// the ones Lambda puts in the environment. They may well end sooner.
pub const LONGEST_SESSION: Duration = Duration::from_secs(12 * 3600);

/// When the signing credentials stop working, as far as is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialLife {
    /// Long-lived keys: the URL lives as long as asked (SigV4: 7 days at most).
    Permanent,
    /// Temporary, ending at this time.
    Until(SystemTime),
    /// Temporary (a session token), with no expiry given.
    Session,
}

impl CredentialLife {
    fn of(credentials: &aws_sdk_s3::config::Credentials) -> Self {
        match (credentials.expiry(), credentials.session_token()) {
            (Some(at), _) => Self::Until(at),
            (None, Some(_)) => Self::Session,
            (None, None) => Self::Permanent,
        }
    }
}

/// `wanted`, cut to what the credentials allow, and whether it was cut.
pub fn capped_lifetime(
    wanted: Duration,
    life: CredentialLife,
    now: SystemTime,
) -> (Duration, bool) {
    let expiry = match life {
        CredentialLife::Permanent => return (wanted, false),
        CredentialLife::Until(at) => at,
        CredentialLife::Session => now + LONGEST_SESSION,
    };
    let left = expiry
        .duration_since(now)
        .unwrap_or_default()
        .saturating_sub(EXPIRY_MARGIN)
        .max(Duration::from_secs(1));
    if left < wanted {
        (left, true)
    } else {
        (wanted, false)
    }
}

impl Presigner for S3Presigner {
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, PresignError> {
        let error = |reason: String| PresignError {
            key: key.to_string(),
            reason,
        };
        let now = SystemTime::now();
        let life = match &self.credentials {
            Some(provider) => CredentialLife::of(
                &provider
                    .provide_credentials()
                    .await
                    .map_err(|e| error(format!("no credentials to sign with: {e}")))?,
            ),
            // Unknown: as the least they could be.
            None => CredentialLife::Session,
        };
        let (lifetime, capped) = capped_lifetime(expires_in, life, now);
        if capped {
            tracing::warn!(key, wanted_s = expires_in.as_secs(), lifetime_s = lifetime.as_secs(),
                credentials = ?life,
                "the presigned image URL dies with the credentials that sign it, before \
                 LABELBOX_URL_DAYS: use LABELBOX_IMAGE_ACCESS=delegated");
        }
        // SigV4 caps a presigned URL at 7 days; the config refuses longer.
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(lifetime)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delegated_url_is_the_objects_plain_https_url_with_its_key_encoded() {
        let urls = DelegatedUrls {
            bucket: "my-data".into(),
            region: "eu-west-1".into(),
        };
        assert_eq!(
            urls.url("captures/images/dt=2026-11-26/hr=09/a b+c.jpg"),
            "https://my-data.s3.eu-west-1.amazonaws.com/captures/images/dt%3D2026-11-26/hr%3D09/a%20b%2Bc.jpg"
        );
    }

    #[test]
    fn a_presigned_lifetime_is_cut_to_the_credentials_and_says_so() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let week = Duration::from_secs(7 * 24 * 3600);
        // Session credentials with an hour left: the URL lives 59 minutes.
        let hour_left = CredentialLife::Until(now + Duration::from_secs(3600));
        assert_eq!(
            capped_lifetime(week, hour_left, now),
            (Duration::from_secs(3540), true)
        );
        // A session token without an expiry (Lambda's): at most a role session.
        assert_eq!(
            capped_lifetime(week, CredentialLife::Session, now),
            (LONGEST_SESSION - EXPIRY_MARGIN, true)
        );
        // Long-lived keys, or a short wish: as asked.
        assert_eq!(
            capped_lifetime(week, CredentialLife::Permanent, now),
            (week, false)
        );
        assert_eq!(
            capped_lifetime(Duration::from_secs(600), hour_left, now),
            (Duration::from_secs(600), false)
        );
        // Expired already: a second, not a refusal to sign (S3 then says why).
        assert_eq!(
            capped_lifetime(
                week,
                CredentialLife::Until(now - Duration::from_secs(5)),
                now
            ),
            (Duration::from_secs(1), true)
        );
    }

    #[test]
    fn what_credentials_say_of_their_life() {
        use aws_sdk_s3::config::Credentials;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = now + Duration::from_secs(900);
        let life = |token: Option<&str>, expiry| {
            CredentialLife::of(&Credentials::new(
                "AKID",
                "secret",
                token.map(str::to_string),
                expiry,
                "test",
            ))
        };
        assert_eq!(life(None, None), CredentialLife::Permanent);
        assert_eq!(life(Some("token"), None), CredentialLife::Session);
        assert_eq!(life(Some("token"), Some(at)), CredentialLife::Until(at));
    }
}
