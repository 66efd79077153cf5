//! The TLS setup every HTTPS connection of the process uses: the SDK clients' HTTP client
//! (`aws::http`) and the ResponseURL sender (`cfn::sender`) share it, loaded once. Its own module
//! because the CloudFormation protocol (`cfn/`) depends on nothing of the AWS layer.

use std::sync::{Arc, OnceLock};

/// The TLS setup every HTTPS connection of the process uses, loaded once: rustls with ring, the
/// system's CA certificates. With no usable CA certificate on the system it trusts no root at
/// all (plain HTTP to an emulator still works, HTTPS fails at the handshake) and
/// [`Tls::unavailable`] says why.
pub fn config() -> Result<&'static Tls, String> {
    static TLS: OnceLock<Result<Tls, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        let unavailable = (added == 0).then(|| {
            let mut why = "no usable CA certificates were found".to_string();
            for e in &found.errors {
                why.push_str(": ");
                why.push_str(&e.to_string());
            }
            why
        });
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Tls {
            config,
            unavailable,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// See [`config`].
#[derive(Debug)]
pub struct Tls {
    pub config: rustls::ClientConfig,
    /// Why HTTPS cannot work: the system has no usable CA certificate.
    pub unavailable: Option<String>,
}
