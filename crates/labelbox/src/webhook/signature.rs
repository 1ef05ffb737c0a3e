//! Labelbox-style webhook signatures: HMAC of the raw body with the shared
//! secret, `X-Hub-Signature: sha1=<hex>` and, when sent,
//! `X-Hub-Signature-256: sha256=<hex>`. Compared in constant time.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "X-Hub-Signature is missing",
            Self::Malformed => "a signature header is not <algorithm>=<hex>",
            Self::Mismatch => "the signature does not match the body",
        })
    }
}

fn verify<M: Mac + hmac::digest::KeyInit>(
    secret: &[u8],
    body: &[u8],
    header: &str,
    prefix: &str,
) -> Result<(), SignatureError> {
    let hex_sig = header
        .trim()
        .strip_prefix(prefix)
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    let mut mac = <M as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Checks the SHA-1 signature (required) and the SHA-256 one when present.
pub fn verify_request(
    secret: &[u8],
    body: &[u8],
    sha1_header: Option<&str>,
    sha256_header: Option<&str>,
) -> Result<(), SignatureError> {
    let sha1_header = sha1_header.ok_or(SignatureError::Missing)?;
    verify::<Hmac<Sha1>>(secret, body, sha1_header, "sha1=")?;
    if let Some(h) = sha256_header {
        verify::<Hmac<Sha256>>(secret, body, h, "sha256=")?;
    }
    Ok(())
}

/// The headers a sender computes: for tests, fixtures and the local labelers.
pub fn sign(secret: &[u8], body: &[u8]) -> (String, String) {
    let mut m1 = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("any key length");
    m1.update(body);
    let mut m256 = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    m256.update(body);
    (
        format!("sha1={}", hex::encode(m1.finalize().into_bytes())),
        format!("sha256={}", hex::encode(m256.finalize().into_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA256).
        let (s1, s256) = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(s1, "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(
            s256,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_and_refuses() {
        let body = br#"{"id":"x"}"#;
        let (s1, s256) = sign(b"secret", body);
        assert_eq!(verify_request(b"secret", body, Some(&s1), None), Ok(()));
        assert_eq!(
            verify_request(b"secret", body, Some(&s1), Some(&s256)),
            Ok(())
        );
        assert_eq!(
            verify_request(b"other", body, Some(&s1), None),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_request(b"secret", b"{}", Some(&s1), None),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_request(b"secret", body, None, Some(&s256)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_request(b"secret", body, Some("md5=00"), None),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_request(b"secret", body, Some("sha1=zz"), None),
            Err(SignatureError::Malformed)
        );
        // A valid SHA-1 with a wrong SHA-256 is refused too.
        let (_, other256) = sign(b"other", body);
        assert_eq!(
            verify_request(b"secret", body, Some(&s1), Some(&other256)),
            Err(SignatureError::Mismatch)
        );
    }
}
