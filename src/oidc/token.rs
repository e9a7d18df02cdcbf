//! Requests to the token endpoint through the `oauth2` crate: the authorization request with
//! PKCE, the code exchange and the refresh.
//!
//! Client authentication is `client_secret_post`: with a secret, `client_id` and
//! `client_secret` go in the form body and no `Authorization` header is sent, because
//! JumpCloud (like ORY Hydra) rejects requests that present both. Without a secret the client
//! is public and sends only `client_id`, relying on PKCE.

use std::future::Future;
use std::pin::Pin;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::OidcError;
use crate::config::OidcSettings;
use crate::secret::Secret;

/// The `id_token` member that OpenID Connect adds to the OAuth token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    #[serde(default)]
    id_token: Option<Secret<String>>,
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OAuthClient<HasAuthUrl> = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Tokens from a token response.
#[derive(Debug)]
pub struct TokenSet {
    pub id_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
}

/// An authorization request in progress: the URL to open and what the callback must match.
#[derive(Debug)]
pub struct AuthorizationRequest {
    pub url: Url,
    pub state: Secret<String>,
    pub nonce: Secret<String>,
    pub pkce_verifier: PkceCodeVerifier,
}

/// A client of one application's token endpoint.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    client_id: String,
    client_secret: Option<Secret<String>>,
    token_url: TokenUrl,
}

impl TokenClient {
    pub fn new(http: reqwest::Client, settings: &OidcSettings, token_endpoint: &str) -> Result<Self, OidcError> {
        let token_url = TokenUrl::new(token_endpoint.to_owned()).map_err(|e| OidcError::InvalidDiscovery {
            url: token_endpoint.to_owned(),
            reason: format!("`token_endpoint` is not a URL: {e}"),
        })?;
        Ok(Self {
            http,
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            token_url,
        })
    }

    fn oauth_client(&self) -> OAuthClient<EndpointNotSet> {
        let client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(self.token_url.clone())
            .set_auth_type(AuthType::RequestBody);
        match &self.client_secret {
            Some(secret) => client.set_client_secret(ClientSecret::new(secret.expose().clone())),
            None => client,
        }
    }

    /// Builds the authorization URL with a fresh `state`, `nonce` and PKCE S256 challenge.
    pub fn authorization_request(
        &self,
        authorization_endpoint: &str,
        redirect_uri: &Url,
        scopes: &[String],
    ) -> Result<AuthorizationRequest, OidcError> {
        let auth_url = AuthUrl::new(authorization_endpoint.to_owned()).map_err(|e| OidcError::InvalidDiscovery {
            url: authorization_endpoint.to_owned(),
            reason: format!("`authorization_endpoint` is not a URL: {e}"),
        })?;
        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random();
        let (url, state) = self
            .oauth_client()
            .set_auth_uri(auth_url)
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().cloned().map(Scope::new))
            .add_extra_param("nonce", nonce.secret())
            .set_pkce_challenge(challenge)
            .url();
        Ok(AuthorizationRequest {
            url,
            state: Secret::new(state.into_secret()),
            nonce: Secret::new(nonce.into_secret()),
            pkce_verifier,
        })
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(
        &self,
        code: Secret<String>,
        pkce_verifier: PkceCodeVerifier,
        redirect_uri: &Url,
    ) -> Result<TokenSet, OidcError> {
        const GRANT: &str = "authorization code";
        let response = self
            .oauth_client()
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
            .exchange_code(AuthorizationCode::new(code.expose().clone()))
            .set_pkce_verifier(pkce_verifier)
            .request_async(&|request| self.send(request))
            .await
            .map_err(|e| token_error(GRANT, e))?;
        Ok(token_set(response))
    }

    /// Exchanges a refresh token for new tokens.
    pub async fn refresh(&self, refresh_token: &Secret<String>) -> Result<TokenSet, OidcError> {
        const GRANT: &str = "refresh token";
        let refresh_token = RefreshToken::new(refresh_token.expose().clone());
        let response = self
            .oauth_client()
            .exchange_refresh_token(&refresh_token)
            .request_async(&|request| self.send(request))
            .await
            .map_err(|e| token_error(GRANT, e))?;
        Ok(token_set(response))
    }

    fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send + '_>> {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self.http.execute(request).await?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await?;
            Ok(builder
                .body(body.to_vec())
                .expect("a status and headers copied from a valid response always build"))
        })
    }
}

fn token_set(response: OidcTokenResponse) -> TokenSet {
    TokenSet {
        id_token: response.extra_fields().id_token.clone(),
        refresh_token: response.refresh_token().map(|t| Secret::new(t.secret().clone())),
    }
}

fn token_error(grant: &'static str, error: RequestTokenError<reqwest::Error, BasicErrorResponse>) -> OidcError {
    match error {
        RequestTokenError::ServerResponse(response) => OidcError::TokenRejected {
            grant,
            error: response.error().to_string(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Request(source) => OidcError::TokenUnreachable { grant, source },
        // The parse error's message may quote part of the body, which can hold tokens, so
        // only the JSON path of the failure is reported.
        RequestTokenError::Parse(error, _body) => OidcError::InvalidTokenResponse {
            grant,
            reason: format!("unexpected content at `{}`", error.path()),
        },
        RequestTokenError::Other(reason) => OidcError::InvalidTokenResponse { grant, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> TokenClient {
        let settings = OidcSettings {
            issuer: "https://idp.example/".into(),
            client_id: "client-1".into(),
            client_secret: Some(Secret::new("sentinel-client-secret".into())),
            redirect_uri: Url::parse("http://localhost:5000/authorize").unwrap(),
            scopes: vec!["openid".into(), "email".into()],
        };
        TokenClient::new(reqwest::Client::new(), &settings, "https://idp.example/oauth2/token").unwrap()
    }

    #[test]
    fn authorization_url_has_pkce_state_nonce() {
        let redirect = Url::parse("http://127.0.0.1:5000/authorize").unwrap();
        let scopes = vec!["openid".to_owned(), "email".to_owned(), "offline_access".to_owned()];
        let request = client()
            .authorization_request("https://idp.example/oauth2/auth", &redirect, &scopes)
            .unwrap();
        let query: std::collections::HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "client-1");
        assert_eq!(query["redirect_uri"], "http://127.0.0.1:5000/authorize");
        assert_eq!(query["scope"], "openid email offline_access");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["state"], *request.state.expose());
        assert_eq!(query["nonce"], *request.nonce.expose());
        assert_ne!(query["state"], query["nonce"]);
        assert!(query["code_challenge"].len() >= 43);
        assert!(!request.url.as_str().contains("sentinel-client-secret"));
    }

    #[test]
    fn requests_are_unique() {
        let redirect = Url::parse("http://127.0.0.1:5000/authorize").unwrap();
        let a = client()
            .authorization_request("https://idp.example/a", &redirect, &[])
            .unwrap();
        let b = client()
            .authorization_request("https://idp.example/a", &redirect, &[])
            .unwrap();
        assert_ne!(a.state.expose(), b.state.expose());
        assert_ne!(a.nonce.expose(), b.nonce.expose());
        assert_ne!(a.pkce_verifier.secret(), b.pkce_verifier.secret());
    }

    #[test]
    fn client_debug_redacted() {
        let rendered = format!("{:?}", client());
        assert!(!rendered.contains("sentinel-client-secret"), "{rendered}");
    }
}
