//! The Lambda function: JSON logs, clients built once, then every event through
//! the protocol driver, which answers CloudFormation exactly once.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use vendor_grants::config::Config;
use vendor_grants::function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // RUST_LOG: a level, or `level,target=level,...` (the template offers
    // `info,vendor_grants=debug`); unset or unreadable means info.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false),
        )
        .init();
    // Which release is running: the first line of every execution environment's log stream.
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "vendor-grants-lambda starting"
    );
    let function = Arc::new(function::from_config(&Config::from_env()).await?);
    // The payload is taken raw and parsed by the function, so that an event the runtime's parser
    // would refuse (nested too deep) still gets its answer.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let function = function.clone();
        async move {
            let (payload, context) = event.into_parts();
            // Boxed: the lifecycle's future is deep, and the runtime nests it further.
            let answer = Box::pin(function::handle(
                &function,
                payload.get(),
                &context.invoked_function_arn,
                context.deadline(),
            ))
            .await;
            Ok::<_, lambda_runtime::Error>(answer)
        }
    }))
    .await
}
