//! The top-level error, its exit code and its one-line rendering.
//!
//! Exit codes (also in `docs/reference.md`):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | unexpected failure (cache I/O, malformed response, a bug) |
//! | 2 | invalid command line or profile settings |
//! | 3 | sign-in required: run `aws-tip login --profile P` |
//! | 4 | the identity provider or AWS rejected a request (denied, invalid grant, not found) |
//! | 5 | a service could not be reached or timed out; trying again may help |

use std::error::Error as StdError;

use crate::aws::AwsError;
use crate::cache::CacheError;
use crate::config::ConfigError;
use crate::oidc::{LoginError, OidcError};

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_LOGIN_REQUIRED: u8 = 3;
pub const EXIT_REJECTED: u8 = 4;
pub const EXIT_UNAVAILABLE: u8 = 5;

/// The class of an error, by the action it calls for from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Unexpected; probably not fixable by the user.
    Failed,
    /// The settings are wrong.
    Configuration,
    /// The user must sign in again.
    LoginRequired,
    /// A service refused the request.
    Rejected,
    /// A service could not be reached; retrying may help.
    Unavailable,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Failed => EXIT_FAILURE,
            Self::Configuration => EXIT_USAGE,
            Self::LoginRequired => EXIT_LOGIN_REQUIRED,
            Self::Rejected => EXIT_REJECTED,
            Self::Unavailable => EXIT_UNAVAILABLE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("sign-in required for profile `{profile}` ({reason}); run `aws-tip login --profile {profile}`")]
    LoginRequired { profile: String, reason: String },

    #[error(transparent)]
    Cache(#[from] CacheError),

    #[error(transparent)]
    Oidc(#[from] OidcError),

    #[error(transparent)]
    Login(#[from] LoginError),

    #[error(transparent)]
    Aws(#[from] AwsError),

    #[error(transparent)]
    HttpSetup(#[from] crate::http::HttpSetupError),

    #[error("failed to write the credentials to stdout")]
    Stdout(#[source] std::io::Error),

    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Configuration,
            Self::LoginRequired { .. } => ErrorKind::LoginRequired,
            Self::Cache(CacheError::LockTimeout { .. }) => ErrorKind::Unavailable,
            Self::Cache(CacheError::RelativeCacheDirectory(_) | CacheError::UnsafeDirectory { .. }) => {
                ErrorKind::Configuration
            }
            Self::Cache(_) | Self::Stdout(_) | Self::Runtime(_) => ErrorKind::Failed,
            Self::HttpSetup(_) => ErrorKind::Configuration,
            Self::Oidc(e) => e.kind(),
            Self::Login(e) => e.kind(),
            Self::Aws(e) => e.kind(),
        }
    }
}

/// Renders an error and its sources on one line, joined by ": ".
///
/// Sources whose text the previous message already ends with are skipped, because some
/// libraries repeat their source in their own message.
pub fn chain(error: &dyn StdError) -> String {
    let mut rendered = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !rendered.ends_with(&text) {
            rendered.push_str(": ");
            rendered.push_str(&text);
        }
        source = cause.source();
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_sources() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&error), "outer: inner");
    }

    #[test]
    fn login_required_names_command() {
        let error = Error::LoginRequired {
            profile: "dev".into(),
            reason: "no stored tokens".into(),
        };
        assert_eq!(
            error.to_string(),
            "sign-in required for profile `dev` (no stored tokens); run `aws-tip login --profile dev`"
        );
        assert_eq!(error.kind().exit_code(), 3);
    }
}
