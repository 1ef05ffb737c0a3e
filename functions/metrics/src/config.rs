//! The metrics and rollup functions' configuration, read once in `main`
//! (names as in template.yaml's `Environment`).

use modelobs_adapters::observe::{ObserveClient, ObserveConfig};
use modelobs_adapters::secrets::{self, SecretError};
use thiserror::Error;

use modelobs_pipeline::observe::ObserveSink;
use modelobs_pipeline::sink::{EmfSink, Fanout};
pub use modelobs_pipeline::threshold::DEFAULT_SCORE_THRESHOLD;
use modelobs_pipeline::threshold::parse_score_threshold;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name}={value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATA_BUCKET`
    pub bucket: String,
    /// `SCORE_THRESHOLD`: the windows' operating point (rollup).
    pub score_threshold: f64,
    /// `OBSERVE_CUSTOMER_ID` or `OBSERVE_URL`, with the token; `None`: EMF only.
    pub observe: Option<ObserveConfig>,
}

impl Config {
    /// The token is `OBSERVE_TOKEN`, or the Secrets Manager secret that
    /// `OBSERVE_TOKEN_SECRET_ARN` names (read once, here).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let token = match secrets::secret_source("OBSERVE_TOKEN", get) {
            Ok(_) => Some(secrets::resolve_secret("OBSERVE_TOKEN").await?),
            Err(SecretError::NotConfigured { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        Self::from_lookup(get, token)
    }

    /// `observe_token`: the resolved Observe token, if any.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        observe_token: Option<String>,
    ) -> Result<Self, ConfigError> {
        let bucket = get("DATA_BUCKET").ok_or(ConfigError::Missing("DATA_BUCKET"))?;
        let score_threshold = match get("SCORE_THRESHOLD") {
            None => DEFAULT_SCORE_THRESHOLD,
            Some(v) => parse_score_threshold(&v).ok_or_else(|| ConfigError::Invalid {
                name: "SCORE_THRESHOLD",
                value: v.clone(),
                why: "expected a number in [0, 1]".into(),
            })?,
        };
        Ok(Self {
            bucket,
            score_threshold,
            observe: observe_from(&get, observe_token)?,
        })
    }
}

/// Observe is on when a token and a collector (customer id or URL) are set;
/// half a configuration is an error, not a silent "off".
pub fn observe_from(
    get: &impl Fn(&str) -> Option<String>,
    token: Option<String>,
) -> Result<Option<ObserveConfig>, ConfigError> {
    let customer = get("OBSERVE_CUSTOMER_ID");
    let url = get("OBSERVE_URL");
    match (token, customer, url) {
        (None, None, None) => Ok(None),
        (None, _, _) => Err(ConfigError::Missing("OBSERVE_TOKEN")),
        (Some(token), _, Some(url)) => Ok(Some(ObserveConfig::with_base_url(&url, token))),
        (Some(token), Some(customer), None) => {
            if customer.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(Some(ObserveConfig::for_customer(&customer, token)))
            } else {
                Err(ConfigError::Invalid {
                    name: "OBSERVE_CUSTOMER_ID",
                    value: customer,
                    why: "expected letters and digits only".into(),
                })
            }
        }
        (Some(_), None, None) => Err(ConfigError::Missing("OBSERVE_CUSTOMER_ID")),
    }
}

/// EMF always; Observe too when configured.
pub type Sinks = Fanout<EmfSink, ObserveSink>;

/// EMF, and Observe when configured, with Observe's default budget of
/// [`Fanout::DEFAULT_BUDGET`] (10 s) per invocation: the metrics function's
/// timeout is 60 s, and a batch's S3 work takes a few seconds.
pub fn sinks(observe: Option<&ObserveConfig>) -> Result<Sinks, ConfigError> {
    let observe = observe
        .map(|c| {
            ObserveClient::new(c)
                .map(|client| ("observe", ObserveSink::new(client)))
                .map_err(|e| ConfigError::Invalid {
                    name: "OBSERVE_URL",
                    value: c.base_url.clone(),
                    why: e.to_string(),
                })
        })
        .transpose()?;
    Ok(Fanout::new(EmfSink, observe))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let token = vars
            .iter()
            .find(|(k, _)| *k == "OBSERVE_TOKEN")
            .map(|(_, v)| v.to_string());
        Config::from_lookup(lookup(vars), token)
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_and_observe_settings() {
        let c = config(&[("DATA_BUCKET", "b")]).unwrap();
        assert_eq!(c.score_threshold, DEFAULT_SCORE_THRESHOLD);
        assert!(c.observe.is_none());

        let c = config(&[
            ("DATA_BUCKET", "b"),
            ("SCORE_THRESHOLD", "0.35"),
            ("OBSERVE_CUSTOMER_ID", "123456789"),
            ("OBSERVE_TOKEN", "t"),
        ])
        .unwrap();
        assert_eq!(c.score_threshold, 0.35);
        assert_eq!(
            c.observe.unwrap().ingest_url(),
            "https://123456789.collect.observeinc.com/v1/http/model-observability"
        );

        let c = config(&[
            ("DATA_BUCKET", "b"),
            ("OBSERVE_URL", "http://127.0.0.1:9"),
            ("OBSERVE_TOKEN", "t"),
        ])
        .unwrap();
        assert_eq!(
            c.observe.unwrap().ingest_url(),
            "http://127.0.0.1:9/v1/http/model-observability"
        );
    }

    #[test]
    fn half_configurations_name_the_missing_variable() {
        let err = |vars: &[(&str, &str)]| config(vars).unwrap_err().to_string();
        assert!(err(&[]).contains("DATA_BUCKET"));
        assert!(
            err(&[("DATA_BUCKET", "b"), ("OBSERVE_CUSTOMER_ID", "1")]).contains("OBSERVE_TOKEN")
        );
        assert!(
            err(&[("DATA_BUCKET", "b"), ("OBSERVE_TOKEN", "t")]).contains("OBSERVE_CUSTOMER_ID")
        );
        assert!(
            err(&[("DATA_BUCKET", "b"), ("SCORE_THRESHOLD", "high")]).contains("SCORE_THRESHOLD")
        );
        assert!(
            err(&[
                ("DATA_BUCKET", "b"),
                ("OBSERVE_CUSTOMER_ID", "1.evil.com/x"),
                ("OBSERVE_TOKEN", "t")
            ])
            .contains("OBSERVE_CUSTOMER_ID")
        );
    }

    /// The default must follow the model's metadata, not drift from it.
    #[test]
    fn the_default_threshold_is_the_models() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/nanodet/model.json"
        );
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let found = meta
            .pointer("/postprocess/score_threshold")
            .and_then(|v| v.as_f64())
            .expect("model.json has score_threshold");
        assert_eq!(found, DEFAULT_SCORE_THRESHOLD);
    }
}
