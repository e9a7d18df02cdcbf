//! The loopback listener that receives the authorization response (RFC 8252 section 7.3).
//!
//! It binds before the browser opens, so the redirect can never reach another program that
//! grabbed the port in between. It serves two paths:
//!
//! - `/login` redirects to the authorization URL, so the JumpCloud application's "Login URL"
//!   (`http://localhost:5000/login`) starts the same sign-in;
//! - the redirect path (`/authorize` by default) takes the authorization response.
//!
//! A response whose `state` does not match gets HTTP 400 and is otherwise ignored, so a stray or
//! forged request cannot end the sign-in. The listener stops after one matching response or
//! at the timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use url::Url;

use super::token::AuthorizationRequest;
use crate::error::ErrorKind;
use crate::secret::Secret;

/// Time the servers get to finish their responses after the sign-in ends.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "cannot listen on {address} for the redirect URI; another program may use the port (on macOS the AirPlay Receiver takes port 5000): register another loopback redirect URI in the application and set it as `tip_redirect_uri`"
    )]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("no authorization response arrived within {} seconds; run the command again, or use `--no-browser` and open the printed URL yourself", .0.as_secs())]
    TimedOut(Duration),

    #[error("the identity provider returned `{error}`{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied { error: String, description: Option<String> },

    #[error("the authorization response names issuer `{found}`, expected `{expected}`")]
    WrongIssuer { expected: String, found: String },
}

impl LoginError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Bind { .. } => ErrorKind::Configuration,
            Self::TimedOut(_) => ErrorKind::Failed,
            Self::Denied { .. } | Self::WrongIssuer { .. } => ErrorKind::Rejected,
        }
    }
}

/// The bound loopback listeners and the redirect URI they serve.
#[derive(Debug)]
pub struct Loopback {
    listeners: Vec<TcpListener>,
    redirect_uri: Url,
}

impl Loopback {
    /// Binds the host and port of `configured`; port 0 picks a free port.
    ///
    /// `localhost` binds 127.0.0.1 and, when the machine has IPv6, [::1] on the same port,
    /// because browsers may resolve `localhost` to either.
    pub async fn bind(configured: &Url) -> Result<Self, LoginError> {
        let port = configured.port_or_known_default().unwrap_or(80);
        let (primary, secondary): (IpAddr, Option<IpAddr>) = match configured.host() {
            Some(url::Host::Ipv4(ip)) => (IpAddr::V4(ip), None),
            Some(url::Host::Ipv6(ip)) => (IpAddr::V6(ip), None),
            _ => (IpAddr::V4(Ipv4Addr::LOCALHOST), Some(IpAddr::V6(Ipv6Addr::LOCALHOST))),
        };
        let address = SocketAddr::new(primary, port);
        let first = TcpListener::bind(address)
            .await
            .map_err(|source| LoginError::Bind { address, source })?;
        let bound_port = first
            .local_addr()
            .map_err(|source| LoginError::Bind { address, source })?
            .port();
        let mut listeners = vec![first];
        if let Some(ip) = secondary {
            match TcpListener::bind(SocketAddr::new(ip, bound_port)).await {
                Ok(listener) => listeners.push(listener),
                Err(error) => tracing::debug!(%ip, port = bound_port, %error, "not listening on the IPv6 loopback"),
            }
        }
        let mut redirect_uri = configured.clone();
        redirect_uri
            .set_port(Some(bound_port))
            .expect("an http URL with a host accepts a port");
        tracing::debug!(redirect_uri = %redirect_uri, listeners = listeners.len(), "loopback listener bound");
        Ok(Self {
            listeners,
            redirect_uri,
        })
    }

    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Returns the `/login` URL on the same listener, which starts the sign-in.
    pub fn login_url(&self) -> Url {
        let mut url = self.redirect_uri.clone();
        url.set_path("/login");
        url
    }

    /// Serves until a response matching `request` arrives, then returns its code.
    ///
    /// `issuer` is checked against the response's `iss` parameter when the provider sends one
    /// (RFC 9207), which stops a response from another provider being taken for this one.
    pub async fn wait_for_code(
        self,
        request: &AuthorizationRequest,
        issuer: &str,
        timeout: Duration,
    ) -> Result<Secret<String>, LoginError> {
        let (result_tx, result_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            authorization_url: request.url.to_string(),
            state: request.state.clone(),
            issuer: issuer.to_owned(),
            result: Mutex::new(Some(result_tx)),
        });
        let router = Router::new()
            .route("/login", get(start_login))
            .route(self.redirect_uri.path(), get(receive_callback))
            .fallback(not_found)
            .with_state(shared);

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut servers = tokio::task::JoinSet::new();
        for listener in self.listeners {
            let mut stop = stop_rx.clone();
            let server = axum::serve(listener, router.clone()).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            servers.spawn(async move {
                if let Err(error) = server.await {
                    tracing::warn!(%error, "loopback listener failed");
                }
            });
        }

        let outcome = match tokio::time::timeout(timeout, result_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(LoginError::TimedOut(timeout)),
        };
        let _ = stop_tx.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, async { while servers.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            servers.abort_all();
        }
        outcome
    }
}

/// The authorization code, or why the sign-in failed.
type CallbackOutcome = Result<Secret<String>, LoginError>;

struct Shared {
    authorization_url: String,
    state: Secret<String>,
    issuer: String,
    result: Mutex<Option<oneshot::Sender<CallbackOutcome>>>,
}

impl Shared {
    /// Delivers the outcome once; returns false when a response was already taken.
    fn finish(&self, outcome: CallbackOutcome) -> bool {
        let sender = self
            .result
            .lock()
            .expect("no code panics while holding this lock")
            .take();
        match sender {
            Some(sender) => {
                let _ = sender.send(outcome);
                true
            }
            None => false,
        }
    }
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

async fn start_login(State(shared): State<Arc<Shared>>) -> Response {
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, shared.authorization_url.clone()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

async fn receive_callback(State(shared): State<Arc<Shared>>, Query(params): Query<CallbackParams>) -> Response {
    // Security: the query contains the authorization code, so neither it nor the URL is logged.
    if params.state.as_deref() != Some(shared.state.expose().as_str()) {
        tracing::warn!(
            has_state = params.state.is_some(),
            "ignored an authorization response whose state does not match this sign-in"
        );
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in response rejected",
            "This response does not belong to the sign-in in progress, so aws-tip ignored it.",
        );
    }
    if let Some(found) = params.iss
        && found != shared.issuer
    {
        let error = LoginError::WrongIssuer {
            expected: shared.issuer.clone(),
            found,
        };
        shared.finish(Err(error));
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The response came from an unexpected issuer. Return to the terminal.",
        );
    }
    let outcome = match (params.code, params.error) {
        (_, Some(error)) => Err(LoginError::Denied {
            error,
            description: params.error_description,
        }),
        (Some(code), None) => Ok(Secret::new(code)),
        (None, None) => Err(LoginError::Denied {
            error: "invalid_request".into(),
            description: Some("the response has neither `code` nor `error`".into()),
        }),
    };
    let succeeded = outcome.is_ok();
    if !shared.finish(outcome) {
        return page(
            StatusCode::CONFLICT,
            "Sign-in already finished",
            "This sign-in already received a response. Return to the terminal.",
        );
    }
    if succeeded {
        page(
            StatusCode::OK,
            "Signed in",
            "aws-tip received the sign-in. You can close this tab and return to the terminal.",
        )
    } else {
        page(
            StatusCode::OK,
            "Sign-in failed",
            "The identity provider did not sign you in. Return to the terminal for details.",
        )
    }
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "aws-tip serves only the sign-in paths here.",
    )
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; margin: 3em\"><h1>{title}</h1><p>{message}</p></body></html>"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use oauth2::PkceCodeVerifier;

    use super::*;

    fn request(port: u16) -> AuthorizationRequest {
        AuthorizationRequest {
            url: Url::parse(&format!("https://idp.example/auth?state=s-1&port={port}")).unwrap(),
            state: Secret::new("s-1".into()),
            nonce: Secret::new("n-1".into()),
            pkce_verifier: PkceCodeVerifier::new("v".repeat(43)),
        }
    }

    async fn bound() -> Loopback {
        Loopback::bind(&Url::parse("http://127.0.0.1:0/authorize").unwrap())
            .await
            .unwrap()
    }

    async fn get(url: String) -> reqwest::Response {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn port_zero_picks_free_port() {
        let loopback = bound().await;
        let port = loopback.redirect_uri().port().unwrap();
        assert_ne!(port, 0);
        assert_eq!(loopback.redirect_uri().path(), "/authorize");
        assert_eq!(loopback.login_url().as_str(), format!("http://127.0.0.1:{port}/login"));
    }

    #[tokio::test]
    async fn busy_port_reported() {
        let loopback = bound().await;
        let err = Loopback::bind(loopback.redirect_uri()).await.unwrap_err();
        assert!(matches!(err, LoginError::Bind { .. }));
        assert!(err.to_string().contains("tip_redirect_uri"), "{err}");
    }

    #[tokio::test]
    async fn matching_state_returns_code() {
        let loopback = bound().await;
        let base = loopback.redirect_uri().clone();
        let request = request(base.port().unwrap());
        let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_secs(10));
        let browser = async {
            let login = get(format!("http://127.0.0.1:{}/login", base.port().unwrap())).await;
            assert_eq!(login.status(), 302);
            assert_eq!(login.headers()["location"], request.url.as_str());
            get(format!("{base}?code=c-1&state=s-1&iss=https%3A%2F%2Fidp.example%2F")).await
        };
        let (code, response) = tokio::join!(wait, browser);
        assert_eq!(code.unwrap().expose(), "c-1");
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn state_mismatch_rejected() {
        let loopback = bound().await;
        let base = loopback.redirect_uri().clone();
        let request = request(0);
        let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_secs(10));
        let browser = async {
            let forged = get(format!("{base}?code=evil&state=wrong")).await;
            let missing = get(format!("{base}?code=evil")).await;
            let real = get(format!("{base}?code=c-2&state=s-1")).await;
            (forged.status(), missing.status(), real.status())
        };
        let (code, statuses) = tokio::join!(wait, browser);
        assert_eq!(
            statuses,
            (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, StatusCode::OK)
        );
        assert_eq!(code.unwrap().expose(), "c-2");
    }

    #[tokio::test]
    async fn provider_error_returned() {
        let loopback = bound().await;
        let base = loopback.redirect_uri().clone();
        let request = request(0);
        let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_secs(10));
        let browser = get(format!(
            "{base}?error=access_denied&error_description=denied+by+user&state=s-1"
        ));
        let (result, _) = tokio::join!(wait, browser);
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the identity provider returned `access_denied`: denied by user"
        );
    }

    #[tokio::test]
    async fn foreign_issuer_rejected() {
        let loopback = bound().await;
        let base = loopback.redirect_uri().clone();
        let request = request(0);
        let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_secs(10));
        let browser = get(format!("{base}?code=c&state=s-1&iss=https%3A%2F%2Fevil.example%2F"));
        let (result, _) = tokio::join!(wait, browser);
        assert!(matches!(result, Err(LoginError::WrongIssuer { .. })));
    }

    #[tokio::test]
    async fn no_response_times_out() {
        let loopback = bound().await;
        let result = loopback
            .wait_for_code(&request(0), "https://idp.example/", Duration::from_millis(50))
            .await;
        assert!(matches!(result, Err(LoginError::TimedOut(_))));
    }

    #[tokio::test]
    async fn other_paths_not_found() {
        let loopback = bound().await;
        let base = loopback.redirect_uri().clone();
        let request = request(0);
        let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_millis(500));
        let browser = get(format!("http://127.0.0.1:{}/other", base.port().unwrap()));
        let (_, response) = tokio::join!(wait, browser);
        assert_eq!(response.status(), 404);
    }
}
