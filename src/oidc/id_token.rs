//! Reading and checking the claims of an ID token.
//!
//! The signature is not verified: the ID token comes straight from the token endpoint over
//! TLS, which OpenID Connect Core 1.0 section 3.1.3.7 accepts in place of a signature check
//! for the authorization code flow. The claims that bind the token to this sign-in are
//! checked: `iss`, `aud`, `azp`, `exp` and `nonce`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

/// Tolerated difference between our clock and the provider's.
const CLOCK_SKEW: time::Duration = time::Duration::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error("the token response has no `id_token`; check that the `openid` scope is granted")]
    Missing,

    #[error("the ID token is not a JWT: {0}")]
    Malformed(&'static str),

    #[error("the ID token's `{claim}` claim is `{found}`, expected `{expected}`")]
    ClaimMismatch {
        claim: &'static str,
        expected: String,
        found: String,
    },

    #[error("the ID token's `nonce` does not match this sign-in")]
    NonceMismatch,

    #[error("the ID token expired at {0}")]
    Expired(OffsetDateTime),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, client_id: &str) -> bool {
        match self {
            Self::One(aud) => aud == client_id,
            Self::Many(auds) => auds.iter().any(|aud| aud == client_id),
        }
    }
}

/// Decodes the payload of a JWT into `T` without verifying its signature.
///
/// Errors never quote the token, since it is a credential.
pub fn decode_jwt_payload<T: DeserializeOwned>(jwt: &str) -> Result<T, IdTokenError> {
    let mut parts = jwt.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed("expected three dot-separated parts"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| IdTokenError::Malformed("the payload is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| IdTokenError::Malformed("the payload lacks a required claim (`iss`, `sub`, `aud` or `exp`)"))
}

/// The claims aws-tip uses; other claims are ignored.
#[derive(Debug, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    aud: Audience,
    #[serde(default)]
    azp: Option<String>,
    exp: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl IdTokenClaims {
    /// Decodes the claims of an ID token without verifying its signature.
    pub fn decode(jwt: &str) -> Result<Self, IdTokenError> {
        decode_jwt_payload(jwt)
    }

    pub fn expires_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.exp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Checks issuer, audience, authorized party, expiry and, when `nonce` is given, the nonce.
    pub fn validate(
        &self,
        issuer: &str,
        client_id: &str,
        nonce: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), IdTokenError> {
        if self.iss != issuer {
            return Err(IdTokenError::ClaimMismatch {
                claim: "iss",
                expected: issuer.into(),
                found: self.iss.clone(),
            });
        }
        if !self.aud.contains(client_id) {
            return Err(IdTokenError::ClaimMismatch {
                claim: "aud",
                expected: client_id.into(),
                found: match &self.aud {
                    Audience::One(aud) => aud.clone(),
                    Audience::Many(auds) => auds.join(" "),
                },
            });
        }
        if let Some(azp) = &self.azp
            && azp != client_id
        {
            return Err(IdTokenError::ClaimMismatch {
                claim: "azp",
                expected: client_id.into(),
                found: azp.clone(),
            });
        }
        if self.expires_at() + CLOCK_SKEW <= now {
            return Err(IdTokenError::Expired(self.expires_at()));
        }
        if let Some(expected) = nonce
            && self.nonce.as_deref() != Some(expected)
        {
            return Err(IdTokenError::NonceMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
pub mod tests {
    use time::macros::datetime;

    use super::*;

    /// Builds an unsigned JWT with the given claims.
    pub fn jwt(claims: serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.c2ln")
    }

    fn claims(aud: serde_json::Value) -> IdTokenClaims {
        IdTokenClaims::decode(&jwt(serde_json::json!({
            "iss": "https://idp.example/", "sub": "u1", "aud": aud, "exp": 1_796_418_000,
            "nonce": "n-1", "email": "u1@example.com"
        })))
        .unwrap()
    }

    const NOW: OffsetDateTime = datetime!(2026-12-04 20:00 UTC);

    #[test]
    fn valid_token_accepted() {
        let claims = claims(serde_json::json!("client"));
        assert_eq!(claims.email.as_deref(), Some("u1@example.com"));
        claims
            .validate("https://idp.example/", "client", Some("n-1"), NOW)
            .unwrap();
    }

    #[test]
    fn audience_array_accepted() {
        let claims = claims(serde_json::json!(["other", "client"]));
        claims
            .validate("https://idp.example/", "client", Some("n-1"), NOW)
            .unwrap();
    }

    #[test]
    fn wrong_audience_rejected() {
        let err = claims(serde_json::json!("other")).validate("https://idp.example/", "client", None, NOW);
        assert!(matches!(err, Err(IdTokenError::ClaimMismatch { claim: "aud", .. })));
    }

    #[test]
    fn wrong_issuer_rejected() {
        let err = claims(serde_json::json!("client")).validate("https://idp.example", "client", None, NOW);
        assert!(matches!(err, Err(IdTokenError::ClaimMismatch { claim: "iss", .. })));
    }

    #[test]
    fn wrong_nonce_rejected() {
        let err = claims(serde_json::json!("client")).validate("https://idp.example/", "client", Some("n-2"), NOW);
        assert!(matches!(err, Err(IdTokenError::NonceMismatch)));
    }

    #[test]
    fn expired_token_rejected() {
        let later = datetime!(2027-01-01 00:00 UTC);
        let err = claims(serde_json::json!("client")).validate("https://idp.example/", "client", None, later);
        assert!(matches!(err, Err(IdTokenError::Expired(_))));
    }

    #[test]
    fn malformed_tokens_rejected() {
        for token in [
            "",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode("{}")),
        ] {
            assert!(IdTokenClaims::decode(token).is_err(), "{token}");
        }
    }
}
