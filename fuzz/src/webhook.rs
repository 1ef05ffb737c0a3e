//! Webhook deliveries: the signature check over the raw body
//! (`modelobs_labelbox::webhook::signature`) and the label event payload
//! (`modelobs_labelbox::webhook::payload::parse`).
//!
//! Input: `<X-Labelbox-Event>\n<X-Hub-Signature>\n<X-Hub-Signature-256>\n<body>`;
//! an empty header line is a header not sent.

use hmac::{Hmac, Mac};
use modelobs_labelbox::webhook::payload::{self, TopicFrom};
use modelobs_labelbox::webhook::signature::{SignatureError, sign, verify_request};
use sha1::Sha1;

const SECRET: &[u8] = b"fuzz-webhook-secret";

/// The input `run` takes, from its parts (for seeds).
pub fn input(
    topic: Option<&str>,
    sha1: Option<&str>,
    sha256: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    for header in [topic, sha1, sha256] {
        out.extend_from_slice(header.unwrap_or("").as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(body);
    out
}

fn header(line: &str) -> Option<&str> {
    (!line.is_empty()).then_some(line)
}

pub fn run(data: &[u8]) {
    let (lines, body) = crate::split_lines(data, 3);
    let (topic, sha1, sha256) = (header(&lines[0]), header(&lines[1]), header(&lines[2]));

    // What a sender signs is accepted, and only a matching SHA-1 is.
    let (good1, good256) = sign(SECRET, body);
    assert_eq!(
        verify_request(SECRET, body, Some(&good1), Some(&good256)),
        Ok(())
    );
    assert_eq!(verify_request(SECRET, body, Some(&good1), None), Ok(()));
    assert_eq!(
        verify_request(SECRET, body, None, sha256),
        Err(SignatureError::Missing)
    );
    if verify_request(SECRET, body, sha1, sha256).is_ok() {
        let sent = sha1.expect("accepted with a SHA-1 header");
        let hex_sig = sent
            .trim()
            .strip_prefix("sha1=")
            .expect("accepted as sha1=<hex>");
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(SECRET).expect("any key length");
        mac.update(body);
        assert_eq!(
            hex::decode(hex_sig).ok().as_deref(),
            Some(&mac.finalize().into_bytes()[..]),
            "a signature that is not the body's HMAC was accepted"
        );
    }

    match payload::parse(body, topic) {
        Ok(Some((name, event))) => {
            if event.topic_from == TopicFrom::Header {
                assert_eq!(
                    Some(name.as_str()),
                    topic,
                    "a topic from the header that is not the header's"
                );
            }
            // The same body parses the same way twice (no hidden state).
            assert_eq!(payload::parse(body, topic), Ok(Some((name, event))));
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
