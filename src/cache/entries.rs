//! The JSON formats of the cache files (format version 1).
//!
//! A token file looks like this (secrets shortened):
//!
//! ```json
//! {"version":1,"issuer":"https://oauth.id.jumpcloud.com/","client_id":"8943e428-...",
//!  "token_endpoint":"https://oauth.id.jumpcloud.com/oauth2/token","subject":"5f3c...",
//!  "email":"alice@example.com","id_token":"eyJ...","id_token_expires_at":"2026-12-04T21:00:00Z",
//!  "refresh_token":"ory_rt_...","updated_at":"2026-12-04T20:00:00Z"}
//! ```
//!
//! Unknown fields are ignored so that a newer version may add fields; a different `version`
//! makes the file unusable (treated as absent).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secret::Secret;

pub const FORMAT_VERSION: u32 = 1;

/// Stored OpenID Connect tokens of one application.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub version: u32,
    pub issuer: String,
    pub client_id: String,
    /// Token endpoint from the discovery document, kept so a refresh needs no discovery request.
    pub token_endpoint: String,
    /// `sub` claim of the ID token.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub id_token: Secret<String>,
    /// `exp` claim of the ID token.
    #[serde(with = "time::serde::rfc3339")]
    pub id_token_expires_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret<String>>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Stored AWS credentials of one set of profile settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialsEntry {
    pub version: u32,
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Secret<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expiration: OffsetDateTime,
    /// OpenID Connect subject whose sign-in produced these credentials.
    pub subject: String,
    /// ARN of the identity-enhanced role session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session_arn: Option<String>,
    /// `MatchedGrantTarget` of GetDataAccess, when the profile names an S3 target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_grant_target: Option<String>,
}

impl CredentialsEntry {
    /// Returns true when more than `window` remains before the credentials expire.
    pub fn is_fresh(&self, now: OffsetDateTime, window: time::Duration) -> bool {
        self.expiration - now > window
    }
}

#[cfg(test)]
pub mod tests {
    use time::macros::datetime;

    use super::*;

    pub fn token_entry() -> TokenEntry {
        TokenEntry {
            version: FORMAT_VERSION,
            issuer: "https://issuer.example/".into(),
            client_id: "client".into(),
            token_endpoint: "https://issuer.example/oauth2/token".into(),
            subject: "user-1".into(),
            email: Some("user@example.com".into()),
            id_token: Secret::new("sentinel-id-token".into()),
            id_token_expires_at: datetime!(2026-12-04 21:00 UTC),
            refresh_token: Some(Secret::new("sentinel-refresh-token".into())),
            updated_at: datetime!(2026-12-04 20:00 UTC),
        }
    }

    pub fn credentials_entry() -> CredentialsEntry {
        CredentialsEntry {
            version: FORMAT_VERSION,
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("sentinel-secret-key".into()),
            session_token: Secret::new("sentinel-session-token".into()),
            expiration: datetime!(2026-12-04 21:00 UTC),
            subject: "user-1".into(),
            role_session_arn: None,
            matched_grant_target: None,
        }
    }

    #[test]
    fn token_entry_golden_json() {
        let json = serde_json::to_string(&token_entry()).unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"issuer":"https://issuer.example/","client_id":"client","token_endpoint":"https://issuer.example/oauth2/token","subject":"user-1","email":"user@example.com","id_token":"sentinel-id-token","id_token_expires_at":"2026-12-04T21:00:00Z","refresh_token":"sentinel-refresh-token","updated_at":"2026-12-04T20:00:00Z"}"#
        );
    }

    #[test]
    fn entries_debug_redacted() {
        let rendered = format!("{:?} {:?}", token_entry(), credentials_entry());
        for sentinel in [
            "sentinel-id-token",
            "sentinel-refresh-token",
            "sentinel-secret-key",
            "sentinel-session-token",
        ] {
            assert!(!rendered.contains(sentinel), "{sentinel} in {rendered}");
        }
    }

    #[test]
    fn unknown_fields_ignored() {
        let mut value = serde_json::to_value(credentials_entry()).unwrap();
        value["added_later"] = serde_json::json!(true);
        let entry: CredentialsEntry = serde_json::from_value(value).unwrap();
        assert_eq!(entry.access_key_id, "ASIAEXAMPLE");
    }

    #[test]
    fn freshness_uses_window() {
        let entry = credentials_entry();
        let window = time::Duration::minutes(20);
        assert!(entry.is_fresh(datetime!(2026-12-04 20:39 UTC), window));
        assert!(!entry.is_fresh(datetime!(2026-12-04 20:40 UTC), window));
        assert!(!entry.is_fresh(datetime!(2026-12-04 21:30 UTC), window));
    }
}
