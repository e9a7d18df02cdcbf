//! `aws-tip login`: the browser sign-in.

use crate::cache::{CacheDir, FORMAT_VERSION, TokenEntry};
use crate::cli::LoginArgs;
use crate::commands::Context;
use crate::config::Profile;
use crate::error::Error;
use crate::http::{CaBundle, oidc_client};
use crate::oidc::{IdTokenClaims, IdTokenError, Loopback, OidcError, ProviderMetadata, TokenClient, open_browser};
use crate::output::format_utc;
use crate::ui;

pub async fn run(context: &Context, args: &LoginArgs) -> Result<(), Error> {
    let profile = Profile::load(&context.env, &context.fs, &args.profile).await?;
    let settings = profile.oidc_settings()?;
    let ca = CaBundle::load(&context.env, profile.ca_bundle())?;
    let http = oidc_client(&ca).map_err(Error::HttpSetup)?;
    // Checked before the browser opens, so a bad cache directory cannot waste a sign-in.
    let cache_dir = CacheDir::from_env(&context.env)?;
    cache_dir.prepare()?;

    let metadata = ProviderMetadata::discover(&http, &settings.issuer).await?;
    let loopback = Loopback::bind(&settings.redirect_uri).await?;
    let client = TokenClient::new(http, &settings, &metadata.token_endpoint)?;
    let request = client.authorization_request(
        &metadata.authorization_endpoint,
        loopback.redirect_uri(),
        &settings.scopes,
    )?;

    if args.no_browser {
        ui::status(&format!(
            "Open this URL in a browser on this machine to sign in:\n\n  {}\n",
            request.url
        ));
    } else {
        ui::status(&format!(
            "Opening the browser to sign in. If it does not open, visit:\n\n  {}\n",
            request.url
        ));
        if let Err(reason) = open_browser(&context.env, request.url.as_str()) {
            ui::status(&format!("{reason}; open the URL above yourself."));
        }
    }
    ui::status(&format!("Waiting for the browser on {} ...", loopback.login_url()));

    let redirect_uri = loopback.redirect_uri().clone();
    let code = loopback
        .wait_for_code(&request, &metadata.issuer, args.timeout())
        .await?;
    let tokens = client.exchange_code(code, request.pkce_verifier, &redirect_uri).await?;

    let id_token = tokens.id_token.ok_or(OidcError::IdToken(IdTokenError::Missing))?;
    let claims = IdTokenClaims::decode(id_token.expose()).map_err(OidcError::from)?;
    let now = context.clock.now();
    claims
        .validate(&metadata.issuer, &settings.client_id, Some(request.nonce.expose()), now)
        .map_err(OidcError::from)?;

    let has_refresh_token = tokens.refresh_token.is_some();
    let entry = TokenEntry {
        version: FORMAT_VERSION,
        issuer: settings.issuer.clone(),
        client_id: settings.client_id.clone(),
        token_endpoint: metadata.token_endpoint.clone(),
        subject: claims.sub.clone(),
        email: claims.email.clone(),
        id_token,
        id_token_expires_at: claims.expires_at(),
        refresh_token: tokens.refresh_token,
        updated_at: now,
    };
    let cache = cache_dir.app(&settings.issuer, &settings.client_id);
    {
        let lock = cache.lock()?;
        lock.write_tokens(&entry)?;
        // Credentials of a previous sign-in may belong to another user.
        let removed = lock.remove_all_credentials()?;
        tracing::debug!(path = %cache.tokens_path().display(), removed_credentials = removed, "stored the sign-in");
    }

    let identity = match &claims.email {
        Some(email) => format!("{email} (subject {})", claims.sub),
        None => format!("subject {}", claims.sub),
    };
    let until = format_utc(entry.id_token_expires_at);
    if has_refresh_token {
        ui::status(&format!(
            "Signed in as {identity}. The ID token is valid until {until}; aws-tip renews it with the stored refresh token."
        ));
    } else {
        ui::status(&format!(
            "Signed in as {identity} until {until}. No refresh token was issued, so sign in again after that time; \
             to avoid this, allow the Refresh Token grant in the application and request the `offline_access` scope."
        ));
    }
    Ok(())
}
