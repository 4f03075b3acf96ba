//! The one `aws-sdk-secretsmanager` client setup the tools share (load generator, crash loop,
//! soak): a plain-HTTP endpoint (the SDK's own hyper stack, no TLS), static credentials, SDK
//! retries and stalled-stream protection off so every failure is seen, and an operation timeout.

use std::time::Duration;

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_secretsmanager::Client;

/// Where and as whom a tool connects.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub endpoint: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    /// Each call fails after this long (a stalled server shows as an error, not a hang).
    pub operation_timeout: Duration,
    /// Names the credentials' source in the SDK's own diagnostics.
    pub provider: &'static str,
}

/// A client for `target`.
pub fn client(target: &Target<'_>) -> Client {
    let http_client = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, _| {
        let mut builder = aws_smithy_http_client::Connector::builder();
        if let Some(settings) = settings {
            builder = builder.connector_settings(settings.clone());
        }
        builder.build_http()
    });
    let credentials = Credentials::new(target.access_key_id, target.secret_access_key, None, None, target.provider);
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(target.endpoint)
        .region(Region::new(target.region.to_string()))
        .credentials_provider(credentials)
        .http_client(http_client)
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(target.operation_timeout).build())
        .build();
    Client::from_conf(config)
}
