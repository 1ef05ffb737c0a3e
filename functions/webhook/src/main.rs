//! The webhook function. Placeholder until its issue (#5) lands: it
//! builds and answers every event with an error, so a deploy of it can never
//! look like it works.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Err::<Value, Error>("the webhook function is not implemented yet".into())
    }))
    .await
}
