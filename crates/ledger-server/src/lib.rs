//! The secret-ledger HTTP server: AWS Secrets Manager's wire protocol (AWS JSON 1.1, every
//! request SigV4-signed) on top of [`ledger_store::Ledger`].
//!
//! Point any AWS SDK at it with an endpoint URL. The region of each request's credential scope
//! selects the secrets it sees (secrets are regional, as in AWS); the access key id is recorded
//! as the actor of every event.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use ledger_server::{start, ServeConfig};
//!
//! let mut config = ServeConfig::new("./secret-ledger-data");
//! config.listen = "127.0.0.1:0".into();
//! let server = start(config).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Modules: [`sigv4`] verifies signatures, [`wire`] converts JSON to domain types and back,
//! [`ops`] runs one operation, [`http`] is the single request handler, [`serve`](mod@serve)
//! opens, binds and shuts down, [`credentials`] reads or generates the credentials file and
//! holds the keys SigV4 checks against, [`audit_ops`] answers the `SecretLedger.<Operation>` audit targets, [`access`] limits what
//! each access key may do.

pub mod access;
pub mod app;
pub mod audit_ops;
pub mod credentials;
pub mod error;
pub mod http;
pub mod log_sink;
pub mod metrics;
pub mod operation;
pub mod ops;
pub mod rotation;
pub mod serve;
pub mod sigv4;
pub mod tls;
pub mod wire;

pub use error::ApiError;
pub use serve::{serve, start, RunningServer, ServeConfig};
