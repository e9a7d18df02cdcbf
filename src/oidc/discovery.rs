//! OpenID Connect Discovery 1.0: the provider metadata at `/.well-known/openid-configuration`.

use serde::Deserialize;
use url::Url;

use super::OidcError;

/// The fields of the discovery document that the authorization code flow needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

impl ProviderMetadata {
    /// Fetches and checks the discovery document of `issuer`.
    ///
    /// The document's `issuer` must equal the configured one. A difference of only a trailing
    /// slash is accepted with a warning, because JumpCloud's issuer ends with a slash and
    /// administrators often copy it without. ID tokens are then checked against the
    /// document's value exactly.
    pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Self, OidcError> {
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        tracing::debug!(%url, "fetching the discovery document");
        let response = http.get(&url).send().await.map_err(|source| OidcError::Unreachable {
            url: url.clone(),
            source,
        })?;
        if !response.status().is_success() {
            return Err(OidcError::HttpStatus {
                url,
                status: response.status().as_u16(),
            });
        }
        let body = response.bytes().await.map_err(|source| OidcError::Unreachable {
            url: url.clone(),
            source,
        })?;
        let metadata: Self = serde_json::from_slice(&body).map_err(|e| OidcError::InvalidDiscovery {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        metadata.check(issuer, &url)?;
        Ok(metadata)
    }

    fn check(&self, issuer: &str, url: &str) -> Result<(), OidcError> {
        if self.issuer != issuer {
            if self.issuer.trim_end_matches('/') == issuer.trim_end_matches('/') {
                tracing::warn!(configured = issuer, discovered = %self.issuer, "issuer differs by a trailing slash; using the discovered value");
            } else {
                return Err(OidcError::IssuerMismatch {
                    expected: issuer.to_owned(),
                    found: self.issuer.clone(),
                });
            }
        }
        for (name, endpoint) in [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
        ] {
            let parsed = Url::parse(endpoint).map_err(|e| OidcError::InvalidDiscovery {
                url: url.to_owned(),
                reason: format!("`{name}` is not a URL: {e}"),
            })?;
            let secure =
                parsed.scheme() == "https" || (parsed.scheme() == "http" && crate::config::is_loopback_host(&parsed));
            if !secure {
                return Err(OidcError::InvalidDiscovery {
                    url: url.to_owned(),
                    reason: format!("`{name}` must be an `https` URL"),
                });
            }
        }
        if let Some(methods) = &self.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            tracing::warn!("the provider does not list PKCE S256 as supported; trying it anyway");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(issuer: &str, token_endpoint: &str) -> ProviderMetadata {
        ProviderMetadata {
            issuer: issuer.into(),
            authorization_endpoint: "https://idp.example/oauth2/auth".into(),
            token_endpoint: token_endpoint.into(),
            code_challenge_methods_supported: None,
        }
    }

    #[test]
    fn issuer_must_match() {
        let doc = metadata("https://evil.example/", "https://idp.example/oauth2/token");
        let err = doc.check("https://idp.example/", "u").unwrap_err();
        assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err:?}");
    }

    #[test]
    fn trailing_slash_tolerated() {
        let doc = metadata("https://idp.example/", "https://idp.example/oauth2/token");
        assert!(doc.check("https://idp.example", "u").is_ok());
    }

    #[test]
    fn plain_http_endpoint_rejected() {
        let doc = metadata("https://idp.example/", "http://idp.example/oauth2/token");
        assert!(doc.check("https://idp.example/", "u").is_err());
        let loopback = metadata("https://idp.example/", "http://127.0.0.1:9/token");
        assert!(loopback.check("https://idp.example/", "u").is_ok());
    }
}
