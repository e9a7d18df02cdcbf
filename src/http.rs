//! HTTP clients for the OpenID provider (reqwest) and for the AWS SDK.
//!
//! Both honour `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`. `AWS_CA_BUNDLE` (or the profile's
//! `ca_bundle`) replaces the trusted root certificates, as it does in the AWS CLI.

use std::path::PathBuf;
use std::time::Duration;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::os_shim_internal::Env;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("failed to read the CA bundle `{}`", path.display())]
    ReadBundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the CA bundle `{}` contains no PEM certificate", path.display())]
    EmptyBundle { path: PathBuf },

    #[error("failed to set up the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// Trusted roots: the platform's, or only those of a PEM bundle.
#[derive(Debug, Clone, Default)]
pub struct CaBundle {
    pem: Option<(PathBuf, Vec<u8>)>,
}

impl CaBundle {
    /// Reads `AWS_CA_BUNDLE`, else `profile_ca_bundle`; neither set means the platform's roots.
    pub fn load(env: &Env, profile_ca_bundle: Option<&str>) -> Result<Self, HttpSetupError> {
        let path = match env.get("AWS_CA_BUNDLE") {
            Ok(path) if !path.is_empty() => PathBuf::from(path),
            _ => match profile_ca_bundle {
                Some(path) => PathBuf::from(path),
                None => return Ok(Self::default()),
            },
        };
        let pem = std::fs::read(&path).map_err(|source| HttpSetupError::ReadBundle {
            path: path.clone(),
            source,
        })?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(HttpSetupError::EmptyBundle { path });
        }
        Ok(Self { pem: Some((path, pem)) })
    }
}

/// A reqwest client for the OpenID provider: no redirects (an OAuth token endpoint must not
/// redirect, and following one could send the client secret elsewhere) and fixed timeouts.
pub fn oidc_client(ca: &CaBundle) -> Result<reqwest::Client, HttpSetupError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("aws-tip/", env!("CARGO_PKG_VERSION")));
    if let Some((path, pem)) = &ca.pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(HttpSetupError::Build)?;
        if certs.is_empty() {
            return Err(HttpSetupError::EmptyBundle { path: path.clone() });
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(HttpSetupError::Build)
}

/// Builds the AWS SDK's default HTTPS client (rustls with aws-lc, proxy from the environment)
/// with the trusted roots of `ca`.
pub fn aws_client(ca: &CaBundle) -> SharedHttpClient {
    let trust_store = match &ca.pem {
        Some((_, pem)) => TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(pem.clone()),
        None => TrustStore::default(),
    };
    let context = TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .expect("a TLS context with a trust store always builds");
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}
