//! `aws-tip credential-process`: AWS credentials as `credential_process` JSON.
//!
//! 1. Without the lock: serve the stored credentials while more than `tip_refresh_window`
//!    remains. This is the common case and costs a few file reads.
//! 2. Under the exclusive lock: read them again, because another process may have refreshed
//!    them while this one waited for the lock.
//! 3. Still under the lock: refresh the ID token when it is near expiry (storing the rotated
//!    refresh token at once), run the AWS exchange, store the credentials.
//!
//! It never opens a browser and never reads stdin. When a new sign-in is needed it fails with
//! [`Error::LoginRequired`], which names the `aws-tip login` command.

use time::Duration;

use crate::aws::Exchange;
use crate::cache::{CacheDir, CacheLock, CredentialsEntry, FORMAT_VERSION, TokenEntry};
use crate::commands::Context;
use crate::config::{AwsSettings, ExchangePrincipal, OidcSettings, Profile};
use crate::error::Error;
use crate::http::{CaBundle, aws_client, oidc_client};
use crate::oidc::{IdTokenClaims, IdTokenError, OidcError, TokenClient};
use crate::output::{format_utc, print_credentials};

/// An ID token with less than this left is refreshed before it is exchanged, so that it
/// cannot expire in flight or be rejected by a service whose clock runs ahead.
const ID_TOKEN_MIN_REMAINING: Duration = Duration::seconds(5 * 60);

pub async fn run(context: &Context, profile_name: &str) -> Result<(), Error> {
    let entry = credentials(context, profile_name).await?;
    print_credentials(&entry).map_err(Error::Stdout)
}

async fn credentials(context: &Context, profile_name: &str) -> Result<CredentialsEntry, Error> {
    let profile = Profile::load(&context.env, &context.fs, profile_name).await?;
    let oidc = profile.oidc_settings()?;
    let aws = profile.aws_settings()?;
    let cache = CacheDir::from_env(&context.env)?.app(&oidc.issuer, &oidc.client_id);
    let key = settings_key(profile_name, &oidc, &aws);
    let login_required = |reason: String| Error::LoginRequired {
        profile: profile_name.to_owned(),
        reason,
    };

    if let Some(entry) = cache.read_credentials(&key)
        && entry.is_fresh(context.clock.now(), aws.refresh_window)
    {
        tracing::debug!(expiration = %format_utc(entry.expiration), "serving stored credentials");
        return Ok(entry);
    }

    // Without a sign-in there is nothing to refresh, so fail before creating the lock file.
    if !cache.has_tokens() {
        return Err(login_required("no stored sign-in".into()));
    }
    let lock = cache.lock()?;
    if let Some(entry) = lock.read_credentials(&key)
        && entry.is_fresh(context.clock.now(), aws.refresh_window)
    {
        tracing::debug!(expiration = %format_utc(entry.expiration), "serving credentials another process stored while this one waited");
        return Ok(entry);
    }

    let mut tokens = match lock.read_tokens() {
        Ok(Some(tokens)) => tokens,
        Ok(None) => return Err(login_required("no stored sign-in".into())),
        Err(error) => return Err(login_required(crate::error::chain(&error))),
    };

    let ca = CaBundle::load(&context.env, profile.ca_bundle())?;
    let refresher = Refresher {
        context,
        settings: &oidc,
        lock: &lock,
        ca: &ca,
        profile: profile_name,
    };

    let now = context.clock.now();
    let near_expiry = tokens.id_token_expires_at - now < ID_TOKEN_MIN_REMAINING;
    tracing::debug!(
        id_token_expires_at = %format_utc(tokens.id_token_expires_at),
        near_expiry,
        refreshable = tokens.refresh_token.is_some(),
        "checked the stored ID token"
    );
    let mut refreshed = false;
    if near_expiry {
        tokens = refresher.refresh(tokens).await?;
        refreshed = true;
    }

    let exchange = Exchange::new(profile_name, aws.clone(), aws_client(&ca)).await;
    let output = match exchange.run(&tokens.id_token).await {
        Err(error) if error.is_assertion_rejected() && !refreshed && tokens.refresh_token.is_some() => {
            // Identity Center may refuse an ID token it has already seen; a fresh one is the cure.
            tracing::debug!(error = %crate::error::chain(&error), "Identity Center rejected the stored ID token; refreshing it and trying once more");
            tokens = refresher.refresh(tokens).await?;
            exchange.run(&tokens.id_token).await
        }
        other => other,
    }?;

    let entry = CredentialsEntry {
        version: FORMAT_VERSION,
        access_key_id: output.credentials.access_key_id,
        secret_access_key: output.credentials.secret_access_key,
        session_token: output.credentials.session_token,
        expiration: output.credentials.expiration,
        subject: tokens.subject.clone(),
        role_session_arn: output.role_session_arn,
        matched_grant_target: output.matched_grant_target,
    };
    // The credentials are valid whether or not they can be stored, so a full or read-only
    // disk costs only the cache, not the caller's credentials.
    match lock.write_credentials(&key, &entry) {
        Ok(()) => tracing::debug!(expiration = %format_utc(entry.expiration), "stored new credentials"),
        Err(error) => tracing::warn!(error = %crate::error::chain(&error), "could not store the new credentials"),
    }
    Ok(entry)
}

/// The refresh of the stored ID token, under the cache lock.
struct Refresher<'a> {
    context: &'a Context,
    settings: &'a OidcSettings,
    lock: &'a CacheLock<'a>,
    ca: &'a CaBundle,
    profile: &'a str,
}

impl Refresher<'_> {
    fn login_required(&self, reason: String) -> Error {
        Error::LoginRequired {
            profile: self.profile.to_owned(),
            reason,
        }
    }

    /// Refreshes the tokens and stores them before returning, so a rotated refresh token is
    /// never lost, even if a later step fails.
    async fn refresh(&self, tokens: TokenEntry) -> Result<TokenEntry, Error> {
        let Some(refresh_token) = &tokens.refresh_token else {
            return Err(self.login_required(format!(
                "the ID token expires at {} and no refresh token is stored",
                format_utc(tokens.id_token_expires_at)
            )));
        };
        let client = TokenClient::new(oidc_client(self.ca)?, self.settings, &tokens.token_endpoint)?;
        let fresh = client.refresh(refresh_token).await.map_err(|error| {
            if error.is_invalid_grant() {
                self.login_required(format!("the identity provider rejected the refresh token: {error}"))
            } else {
                error.into()
            }
        })?;
        let Some(id_token) = fresh.id_token else {
            return Err(self.login_required("the refresh response has no ID token".into()));
        };

        // The refreshed token must come from the same issuer, for the same client and user.
        let original = IdTokenClaims::decode(tokens.id_token.expose()).map_err(OidcError::from)?;
        let claims = IdTokenClaims::decode(id_token.expose()).map_err(OidcError::from)?;
        let now = self.context.clock.now();
        claims
            .validate(&original.iss, &self.settings.client_id, None, now)
            .map_err(OidcError::from)?;
        if claims.sub != tokens.subject {
            return Err(OidcError::from(IdTokenError::ClaimMismatch {
                claim: "sub",
                expected: tokens.subject.clone(),
                found: claims.sub,
            })
            .into());
        }

        let rotated = fresh.refresh_token.is_some();
        let updated = TokenEntry {
            id_token,
            id_token_expires_at: claims.expires_at(),
            refresh_token: fresh.refresh_token.or(tokens.refresh_token),
            email: claims.email.or(tokens.email),
            updated_at: now,
            ..tokens
        };
        self.lock.write_tokens(&updated)?;
        tracing::debug!(
            rotated,
            id_token_expires_at = %format_utc(updated.id_token_expires_at),
            "refreshed and stored the ID token"
        );
        Ok(updated)
    }
}

/// Key of the credentials file of this profile and its settings; changing any setting that
/// shapes the credentials starts a new file.
fn settings_key(profile: &str, oidc: &OidcSettings, aws: &AwsSettings) -> String {
    let exchange = match &aws.exchange {
        ExchangePrincipal::WebIdentityRole { role_arn } => format!("web-identity {role_arn}"),
        ExchangePrincipal::SourceProfile { profile } => format!("source-profile {profile}"),
        ExchangePrincipal::SourceProfileRole { profile, role_arn } => format!("source-profile {profile} {role_arn}"),
    };
    let s3 = aws.s3.as_ref().map_or_else(String::new, |grant| {
        format!(
            "{} {} {} {} {} {}",
            grant.target,
            grant.permission.as_str(),
            grant.privilege.as_str(),
            grant.account_id,
            grant.region,
            grant.duration.whole_seconds()
        )
    });
    crate::cache::short_hash(&[
        profile,
        &oidc.issuer,
        &oidc.client_id,
        &aws.application_arn,
        &aws.idc_region,
        &aws.sts_region,
        &exchange,
        &aws.role_arn,
        &aws.session_duration.whole_seconds().to_string(),
        &s3,
    ])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aws_types::os_shim_internal::{Env, Fs};
    use time::macros::datetime;

    use super::*;
    use crate::cache::entries_for_tests::{credentials_entry, token_entry};
    use crate::clock::FixedClock;

    const CONFIG: &str = "[profile dev]\nregion = us-east-1\ntip_issuer = https://issuer.example/\n\
        tip_client_id = client\ntip_application_arn = arn:aws:sso::222222222222:application/ssoins-1/apl-1\n\
        tip_role_arn = arn:aws:iam::111111111111:role/Bearer\ntip_exchange_role_arn = arn:aws:iam::111111111111:role/Exchange\n";

    struct Harness {
        _dir: tempfile::TempDir,
        context: Context,
        cache: crate::cache::AppCache,
        key: String,
    }

    /// Builds a context whose clock reads `now`, with the profile above and an empty cache.
    async fn harness(now: time::OffsetDateTime) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache").to_string_lossy().into_owned();
        let context = Context {
            env: Env::from_slice(&[("AWS_CONFIG_FILE", "/config"), ("AWS_TIP_CACHE_DIR", &cache_dir)]),
            fs: Fs::from_slice(&[("/config", CONFIG)]),
            clock: Arc::new(FixedClock(now)),
        };
        let profile = Profile::load(&context.env, &context.fs, "dev").await.unwrap();
        let (oidc, aws) = (profile.oidc_settings().unwrap(), profile.aws_settings().unwrap());
        let cache = CacheDir::from_env(&context.env)
            .unwrap()
            .app(&oidc.issuer, &oidc.client_id);
        let key = settings_key("dev", &oidc, &aws);
        Harness {
            _dir: dir,
            context,
            cache,
            key,
        }
    }

    #[tokio::test]
    async fn fresh_credentials_served() {
        // credentials_entry() expires at 21:00; 25 minutes remain, more than the 20-minute window.
        let h = harness(datetime!(2026-12-04 20:35 UTC)).await;
        h.cache
            .lock()
            .unwrap()
            .write_credentials(&h.key, &credentials_entry())
            .unwrap();
        let entry = credentials(&h.context, "dev").await.unwrap();
        assert_eq!(entry.access_key_id, "ASIAEXAMPLE");
    }

    #[tokio::test]
    async fn no_sign_in_requires_login() {
        let h = harness(datetime!(2026-12-04 20:35 UTC)).await;
        let err = credentials(&h.context, "dev").await.unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::LoginRequired);
        assert_eq!(
            err.to_string(),
            "sign-in required for profile `dev` (no stored sign-in); run `aws-tip login --profile dev`"
        );
    }

    #[tokio::test]
    async fn expired_token_without_refresh_requires_login() {
        // Within the window the stored credentials are not served; the ID token (until 21:00)
        // is near expiry at 20:58 and cannot be refreshed.
        let h = harness(datetime!(2026-12-04 20:58 UTC)).await;
        let lock = h.cache.lock().unwrap();
        lock.write_credentials(&h.key, &credentials_entry()).unwrap();
        let mut tokens = token_entry();
        tokens.issuer = "https://issuer.example/".into();
        tokens.refresh_token = None;
        lock.write_tokens(&tokens).unwrap();
        drop(lock);
        let err = credentials(&h.context, "dev").await.unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::LoginRequired);
        assert!(err.to_string().contains("no refresh token is stored"), "{err}");
    }

    #[tokio::test]
    async fn unreadable_tokens_require_login() {
        let h = harness(datetime!(2026-12-04 20:35 UTC)).await;
        h.cache.lock().unwrap();
        std::fs::write(h.cache.tokens_path(), b"{truncated").unwrap();
        let err = credentials(&h.context, "dev").await.unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::LoginRequired);
        assert!(err.to_string().contains("failed to decode"), "{err}");
    }

    #[tokio::test]
    async fn settings_change_key() {
        let h = harness(datetime!(2026-12-04 20:35 UTC)).await;
        let profile = Profile::load(&h.context.env, &h.context.fs, "dev").await.unwrap();
        let oidc = profile.oidc_settings().unwrap();
        let mut aws = profile.aws_settings().unwrap();
        assert_eq!(settings_key("dev", &oidc, &aws), h.key);
        assert_ne!(settings_key("other", &oidc, &aws), h.key);
        aws.role_arn.push('2');
        assert_ne!(settings_key("dev", &oidc, &aws), h.key);
    }
}
