//! The loopback listener that receives the authorization response (RFC 8252 section 7.3).
//!
//! It binds before the browser opens, so the redirect can never reach another program that
//! grabbed the port in between. For a `localhost` redirect URI it listens on both 127.0.0.1 and
//! [::1] at the same port, and fails when another program already listens on either address,
//! unless the machine has no IPv6. It serves two paths:
//!
//! - `/login` redirects to the authorization URL, so the JumpCloud application's "Login URL"
//!   (`http://localhost:5000/login`) starts the same sign-in;
//! - the redirect path (`/authorize` by default) takes the authorization response.
//!
//! Both paths serve GET and HEAD, and other methods get HTTP 405. A response whose `state` does
//! not match, or whose query is malformed, gets HTTP 400 and is otherwise ignored, so a stray or
//! forged request cannot end the sign-in. The listener stops after one matching response or at
//! the timeout.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use url::Url;

use super::token::AuthorizationRequest;
use crate::error::ErrorKind;
use crate::secret::Secret;

/// Time the servers get to finish their responses after the sign-in ends.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Path that starts the sign-in, so it cannot be the redirect path.
const LOGIN_PATH: &str = "/login";

/// Maximum number of ports tried for a `localhost` redirect URI with port 0, when the port picked
/// for 127.0.0.1 is taken on [::1].
const LOCALHOST_PORT_ATTEMPTS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "`tip_redirect_uri = {redirect_uri}` uses the path `/login`, which aws-tip reserves for starting the sign-in, so register a redirect URI with another path, such as `http://localhost:5000/authorize`, in the application and set it as `tip_redirect_uri`"
    )]
    ReservedRedirectPath { redirect_uri: Url },

    #[error(
        "cannot listen on {address} for the redirect URI; another program may use the port (on macOS the AirPlay Receiver takes port 5000): register another loopback redirect URI in the application and set it as `tip_redirect_uri`"
    )]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("no authorization response arrived within {}; run the command again, or use `--no-browser` and open the printed URL yourself", format_seconds(.0))]
    TimedOut(Duration),

    #[error("the identity provider returned `{error}`{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied { error: String, description: Option<String> },

    #[error("the authorization response names issuer `{found}`, expected `{expected}`")]
    WrongIssuer { expected: String, found: String },
}

impl LoginError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ReservedRedirectPath { .. } | Self::Bind { .. } => ErrorKind::Configuration,
            Self::TimedOut(_) => ErrorKind::Failed,
            Self::Denied { .. } | Self::WrongIssuer { .. } => ErrorKind::Rejected,
        }
    }
}

/// Formats whole seconds, such as "1 second" or "300 seconds".
fn format_seconds(duration: &Duration) -> String {
    match duration.as_secs() {
        1 => "1 second".to_owned(),
        seconds => format!("{seconds} seconds"),
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
    ///
    /// # Errors
    ///
    /// [`LoginError::ReservedRedirectPath`] when the path is `/login`, before anything is bound,
    /// and [`LoginError::Bind`] when an address cannot be bound.
    pub async fn bind(configured: &Url) -> Result<Self, LoginError> {
        if configured.path() == LOGIN_PATH {
            return Err(LoginError::ReservedRedirectPath {
                redirect_uri: configured.clone(),
            });
        }

        let port = configured.port_or_known_default().unwrap_or(80);
        let (listeners, bound_port) = match configured.host() {
            Some(url::Host::Ipv4(ip)) => bind_single(SocketAddr::new(IpAddr::V4(ip), port)).await?,
            Some(url::Host::Ipv6(ip)) => bind_single(SocketAddr::new(IpAddr::V6(ip), port)).await?,
            _ => bind_localhost(port, TcpListener::bind).await?,
        };

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
        url.set_path(LOGIN_PATH);
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
            redirect_path: self.redirect_uri.path().to_owned(),
            state: request.state.clone(),
            issuer: issuer.to_owned(),
            result: Mutex::new(Some(result_tx)),
        });
        // The redirect path comes from the configuration, so it is compared as a plain string
        // instead of being used as a route pattern, where `:`, `*` or `{` would have a meaning.
        let router = Router::new().fallback(route_request).with_state(shared);

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

/// Binds `address` and returns its listener and bound port.
async fn bind_single(address: SocketAddr) -> Result<(Vec<TcpListener>, u16), LoginError> {
    let (listener, port) = bind_with_port(address).await?;
    Ok((vec![listener], port))
}

async fn bind_with_port(address: SocketAddr) -> Result<(TcpListener, u16), LoginError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| LoginError::Bind { address, source })?;
    let port = listener
        .local_addr()
        .map_err(|source| LoginError::Bind { address, source })?
        .port();
    Ok((listener, port))
}

/// Binds 127.0.0.1 and [::1] on one port, using `bind_ipv6` for the [::1] side.
///
/// A browser may resolve `localhost` to either address, so another program listening on [::1] at
/// the port could receive the authorization code. That fails with [`LoginError::Bind`] unless the
/// machine has no IPv6. With port 0, a port taken on [::1] leads to another port, up to
/// [`LOCALHOST_PORT_ATTEMPTS`] ports in total.
async fn bind_localhost<F, Fut>(port: u16, mut bind_ipv6: F) -> Result<(Vec<TcpListener>, u16), LoginError>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<TcpListener>>,
{
    let attempts = if port == 0 { LOCALHOST_PORT_ATTEMPTS } else { 1 };
    let mut attempt = 1;
    loop {
        let (ipv4, bound_port) = bind_with_port(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)).await?;
        let ipv6_address = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound_port);
        let error = match bind_ipv6(ipv6_address).await {
            Ok(ipv6) => return Ok((vec![ipv4, ipv6], bound_port)),
            Err(error) => error,
        };

        if error.kind() == io::ErrorKind::AddrInUse && attempt < attempts {
            tracing::debug!(address = %ipv6_address, attempt, "the IPv6 loopback port is in use, so another port is tried");
            attempt += 1;
            continue;
        }
        if ipv6_unavailable(&error) {
            tracing::debug!(address = %ipv6_address, %error, "listening on the IPv4 loopback only, because this machine has no IPv6 loopback");
            return Ok((vec![ipv4], bound_port));
        }
        return Err(LoginError::Bind {
            address: ipv6_address,
            source: error,
        });
    }
}

/// Returns whether `error`, from binding a port on [::1], means this machine has no IPv6
/// loopback rather than that the port is unusable.
fn ipv6_unavailable(error: &io::Error) -> bool {
    match error.kind() {
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported => true,
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied => false,
        // Rust 1.95 reports EAFNOSUPPORT (no IPv6 in the kernel) as `Uncategorized`, which cannot
        // be matched, so a second bind on any free port shows whether IPv6 works at all.
        _ => std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err(),
    }
}

/// The authorization code, or why the sign-in failed.
type CallbackOutcome = Result<Secret<String>, LoginError>;

struct Shared {
    authorization_url: String,
    /// Path of the redirect URI, compared with the request path exactly.
    redirect_path: String,
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

/// Dispatches every request on its exact path: `/login`, the redirect path, or 404.
async fn route_request(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path != LOGIN_PATH && path != shared.redirect_path {
        return not_found();
    }
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed();
    }
    if path == LOGIN_PATH {
        return start_login(&shared);
    }

    match Query::<CallbackParams>::try_from_uri(&uri) {
        Ok(Query(params)) => receive_callback(&shared, params),
        Err(_) => {
            // Security: the rejection can quote the query, which contains the authorization code.
            tracing::warn!("ignored an authorization response whose query is malformed");
            page(
                StatusCode::BAD_REQUEST,
                "Sign-in response rejected",
                "This response has a malformed query, so aws-tip ignored it.",
            )
        }
    }
}

fn start_login(shared: &Shared) -> Response {
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, shared.authorization_url.clone()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

fn receive_callback(shared: &Shared, params: CallbackParams) -> Response {
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

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "aws-tip serves only the sign-in paths here.",
    )
}

fn method_not_allowed() -> Response {
    let mut response = page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "aws-tip accepts only GET and HEAD requests here.",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
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

    fn ipv6_available() -> bool {
        std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
    }

    /// Binds 127.0.0.1:0 for a stand-in [::1] listener, so the tests run without IPv6.
    async fn stand_in_listener() -> io::Result<TcpListener> {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
    }

    #[tokio::test]
    async fn login_path_rejected_before_binding() {
        let held = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        for uri in [
            "http://127.0.0.1:0/login".to_owned(),
            format!("http://127.0.0.1:{port}/login"),
            format!("http://localhost:{port}/login"),
        ] {
            let err = Loopback::bind(&Url::parse(&uri).unwrap()).await.unwrap_err();
            assert!(matches!(err, LoginError::ReservedRedirectPath { .. }), "{uri}: {err:?}");
            assert_eq!(err.kind(), ErrorKind::Configuration);
            let message = err.to_string();
            assert!(message.contains("tip_redirect_uri"), "{message}");
            assert!(message.contains("reserves for starting the sign-in"), "{message}");
        }
    }

    #[tokio::test]
    async fn pattern_like_paths_served_exactly() {
        for path in ["/:cb", "/*x", "/{cb}", "/a/:b/*c", "/login/"] {
            let loopback = Loopback::bind(&Url::parse(&format!("http://127.0.0.1:0{path}")).unwrap())
                .await
                .unwrap();
            let base = loopback.redirect_uri().clone();
            let port = base.port().unwrap();
            let request = request(0);
            let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_secs(10));
            let browser = async {
                let other = get(format!("http://127.0.0.1:{port}/other?code=evil&state=s-1")).await;
                let login = get(format!("http://127.0.0.1:{port}/login")).await;
                let real = get(format!("{base}?code=c-3&state=s-1")).await;
                (other.status(), login.status(), real.status())
            };
            let (code, statuses) = tokio::join!(wait, browser);
            assert_eq!(
                statuses,
                (StatusCode::NOT_FOUND, StatusCode::FOUND, StatusCode::OK),
                "{path}"
            );
            assert_eq!(code.unwrap().expose(), "c-3", "{path}");
        }
    }

    #[tokio::test]
    async fn only_get_and_head_answered() {
        let loopback = bound().await;
        let base = loopback.redirect_uri().clone();
        let port = base.port().unwrap();
        let request = request(0);
        let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_secs(10));
        let browser = async {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap();
            let post = client.post(format!("{base}?code=evil&state=s-1")).send().await.unwrap();

            let post_other = client
                .post(format!("http://127.0.0.1:{port}/other"))
                .send()
                .await
                .unwrap();

            let head_login = client
                .head(format!("http://127.0.0.1:{port}/login"))
                .send()
                .await
                .unwrap();

            let real = get(format!("{base}?code=c-4&state=s-1")).await;
            (post, post_other, head_login, real)
        };
        let (code, (post, post_other, head_login, real)) = tokio::join!(wait, browser);

        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()["allow"], "GET, HEAD");
        assert_eq!(post_other.status(), StatusCode::NOT_FOUND);
        assert_eq!(head_login.status(), StatusCode::FOUND);
        assert_eq!(head_login.headers()["location"], request.url.as_str());
        assert_eq!(real.status(), StatusCode::OK);
        assert_eq!(code.unwrap().expose(), "c-4");
    }

    #[tokio::test]
    async fn malformed_query_ignored() {
        let loopback = bound().await;
        let base = loopback.redirect_uri().clone();
        let request = request(0);
        let wait = loopback.wait_for_code(&request, "https://idp.example/", Duration::from_secs(10));
        let browser = async {
            let duplicated = get(format!("{base}?code=evil&state=s-1&state=s-1")).await;
            let real = get(format!("{base}?code=c-5&state=s-1")).await;
            (duplicated.status(), real.status())
        };
        let (code, statuses) = tokio::join!(wait, browser);
        assert_eq!(statuses, (StatusCode::BAD_REQUEST, StatusCode::OK));
        assert_eq!(code.unwrap().expose(), "c-5");
    }

    #[test]
    fn timeout_message_counts_seconds() {
        let one = LoginError::TimedOut(Duration::from_secs(1)).to_string();
        assert!(one.contains("within 1 second;"), "{one}");
        let many = LoginError::TimedOut(Duration::from_secs(300)).to_string();
        assert!(many.contains("within 300 seconds;"), "{many}");
    }

    #[tokio::test]
    async fn localhost_binds_both_loopbacks() {
        if !ipv6_available() {
            // NOTE: without an IPv6 loopback only 127.0.0.1 is bound, which other tests cover.
            return;
        }
        let loopback = Loopback::bind(&Url::parse("http://localhost:0/authorize").unwrap())
            .await
            .unwrap();
        let port = loopback.redirect_uri().port().unwrap();
        let addresses: Vec<SocketAddr> = loopback
            .listeners
            .iter()
            .map(|listener| listener.local_addr().unwrap())
            .collect();
        assert_eq!(
            addresses,
            [
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            ]
        );
    }

    #[tokio::test]
    async fn localhost_taken_ipv6_port_rejected() {
        if !ipv6_available() {
            // NOTE: this needs an IPv6 loopback to bind [::1] while 127.0.0.1 is free.
            return;
        }
        let held = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let uri = Url::parse(&format!("http://localhost:{port}/authorize")).unwrap();
        let err = Loopback::bind(&uri).await.unwrap_err();
        let LoginError::Bind { address, source } = &err else {
            panic!("expected a bind error, got {err:?}");
        };
        assert_eq!(*address, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
        assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(err.to_string().contains("tip_redirect_uri"), "{err}");
    }

    #[tokio::test]
    async fn localhost_port_zero_retries_taken_ipv6() {
        let mut requested = Vec::new();
        let (listeners, port) = bind_localhost(0, |address| {
            requested.push(address);
            let taken = requested.len() <= 3;
            async move {
                if taken {
                    Err(io::Error::from(io::ErrorKind::AddrInUse))
                } else {
                    stand_in_listener().await
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(requested.len(), 4);
        assert!(requested.iter().all(|address| address.ip() == Ipv6Addr::LOCALHOST));
        assert_eq!(requested[3].port(), port);
        assert_eq!(listeners.len(), 2);
        assert_eq!(
            listeners[0].local_addr().unwrap(),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        );
    }

    #[tokio::test]
    async fn localhost_port_zero_retries_bounded() {
        let mut calls = 0;
        let result = bind_localhost(0, |_| {
            calls += 1;
            async { Err(io::Error::from(io::ErrorKind::AddrInUse)) }
        })
        .await;
        assert_eq!(calls, LOCALHOST_PORT_ATTEMPTS);
        assert!(matches!(result, Err(LoginError::Bind { .. })), "{result:?}");
    }

    #[tokio::test]
    async fn localhost_fixed_port_not_retried() {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut calls = 0;
        let result = bind_localhost(port, |_| {
            calls += 1;
            async { Err(io::Error::from(io::ErrorKind::AddrInUse)) }
        })
        .await;
        assert_eq!(calls, 1);
        let Err(LoginError::Bind { address, .. }) = result else {
            panic!("expected a bind error, got {result:?}");
        };
        assert_eq!(address, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
    }

    #[tokio::test]
    async fn localhost_without_ipv6_uses_ipv4() {
        let (listeners, port) = bind_localhost(0, |_| async { Err(io::Error::from(io::ErrorKind::AddrNotAvailable)) })
            .await
            .unwrap();
        assert_eq!(listeners.len(), 1);
        assert_eq!(
            listeners[0].local_addr().unwrap(),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        );
    }

    #[test]
    fn ipv6_unavailable_only_for_missing_ipv6() {
        assert!(ipv6_unavailable(&io::Error::from(io::ErrorKind::AddrNotAvailable)));
        assert!(ipv6_unavailable(&io::Error::from(io::ErrorKind::Unsupported)));
        assert!(!ipv6_unavailable(&io::Error::from(io::ErrorKind::AddrInUse)));
        assert!(!ipv6_unavailable(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }
}
