//! The Lambda function: JSON logs, clients built once, then every event through
//! the protocol driver, which answers CloudFormation exactly once.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tracing_subscriber::EnvFilter;
use vendor_grants::config::Config;
use vendor_grants::function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .init();
    let function = Arc::new(function::from_config(&Config::from_env()).await?);
    // The payload is taken raw and parsed by the function, so that an event the runtime's parser
    // would refuse (nested too deep) still gets its answer.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let function = function.clone();
        async move {
            let (payload, context) = event.into_parts();
            // Boxed: the lifecycle's future is deep, and the runtime nests it further.
            let outcome = Box::pin(function.handle(
                payload.get(),
                &context.invoked_function_arn,
                context.deadline(),
            ))
            .await;
            Ok::<_, lambda_runtime::Error>(outcome.to_json())
        }
    }))
    .await
}
