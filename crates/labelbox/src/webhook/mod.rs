//! What Labelbox's webhooks send: the HMAC signature over the raw body
//! ([`signature`]) and the label events and their mapping to ground-truth
//! objects ([`payload`]). The webhook function verifies and reads with it;
//! the local labelers sign and write the same shapes with it.

pub mod payload;
pub mod signature;
