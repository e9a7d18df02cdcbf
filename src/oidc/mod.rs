//! OpenID Connect: discovery, the authorization code flow with a loopback redirect, and
//! refresh, against the provider configured by `tip_issuer` (JumpCloud in production).

mod browser;
mod discovery;
mod id_token;
mod loopback;
mod token;

pub use browser::open_browser;
pub use discovery::ProviderMetadata;
pub use id_token::{IdTokenClaims, IdTokenError, decode_jwt_payload};
pub use loopback::{LoginError, Loopback};
pub use token::TokenClient;

use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("failed to reach the OpenID provider at `{url}`")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("the OpenID provider at `{url}` answered HTTP {status}{}", if *status < 500 { "; check `tip_issuer`" } else { "" })]
    HttpStatus { url: String, status: u16 },

    #[error("invalid discovery document at `{url}`: {reason}")]
    InvalidDiscovery { url: String, reason: String },

    #[error("the discovery document names issuer `{found}`, but the profile sets `tip_issuer = {expected}`")]
    IssuerMismatch { expected: String, found: String },

    #[error("the OpenID provider rejected the {grant} request: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenRejected {
        grant: &'static str,
        error: String,
        description: Option<String>,
    },

    #[error("failed to reach the token endpoint for the {grant} request")]
    TokenUnreachable {
        grant: &'static str,
        #[source]
        source: reqwest::Error,
    },

    #[error("invalid token response to the {grant} request: {reason}")]
    InvalidTokenResponse { grant: &'static str, reason: String },

    #[error("the ID token was rejected")]
    IdToken(#[from] IdTokenError),
}

impl OidcError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unreachable { .. } | Self::TokenUnreachable { .. } => ErrorKind::Unavailable,
            Self::HttpStatus { status, .. } if *status >= 500 => ErrorKind::Unavailable,
            Self::HttpStatus { .. } => ErrorKind::Configuration,
            Self::TokenRejected { .. } => ErrorKind::Rejected,
            Self::IssuerMismatch { .. } => ErrorKind::Configuration,
            Self::InvalidDiscovery { .. } | Self::InvalidTokenResponse { .. } | Self::IdToken(_) => ErrorKind::Failed,
        }
    }

    /// Whether the provider rejected a refresh token, so the user must sign in again.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::TokenRejected { error, .. } if error == "invalid_grant")
    }
}
