//! Profile settings: the `tip_*` keys of one profile in the AWS config file.
//!
//! The files are read with the AWS SDK's own profile parser, so `AWS_CONFIG_FILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`, `[profile NAME]` headers and the merge of the credentials file
//! into the config file behave exactly as they do for the AWS CLI. A secret such as
//! `tip_client_secret` may therefore sit in the credentials file instead of the config file.
//!
//! `login` needs only the OpenID Connect settings ([`OidcSettings`]); `credential-process` also
//! needs the AWS settings ([`AwsSettings`]), so an incomplete AWS section does not block sign-in.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use aws_config::profile::ProfileSet;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};
use time::Duration;
use url::Url;

use crate::secret::Secret;

pub const DEFAULT_ISSUER: &str = "https://oauth.id.jumpcloud.com/";
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:5000/authorize";
pub const DEFAULT_SCOPES: &str = "openid email offline_access";
pub const DEFAULT_SESSION_DURATION_SECONDS: i64 = 3600;
pub const DEFAULT_REFRESH_WINDOW_SECONDS: i64 = 1200;

/// Bounds that STS AssumeRole and S3 Control GetDataAccess put on `DurationSeconds`.
const MIN_DURATION_SECONDS: i64 = 900;
const MAX_DURATION_SECONDS: i64 = 43_200;

/// Settings of the OpenID provider application (JumpCloud) that `login` signs in to.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Issuer exactly as configured; the discovery document and ID tokens must match it.
    pub issuer: String,
    pub client_id: String,
    /// Client secret sent with `client_secret_post`; `None` for a public client.
    pub client_secret: Option<Secret<String>>,
    /// Loopback redirect URI. Port 0 selects any free port.
    pub redirect_uri: Url,
    pub scopes: Vec<String>,
}

/// The principal that signs `CreateTokenWithIAM` and the identity-enhanced `AssumeRole`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangePrincipal {
    /// Assume this role with `AssumeRoleWithWebIdentity`, presenting the ID token.
    WebIdentityRole { role_arn: String },
    /// Use the credentials of this AWS profile as they are.
    SourceProfile { profile: String },
    /// Assume `role_arn` with `AssumeRole`, signed with the credentials of `profile`.
    SourceProfileRole { profile: String, role_arn: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Permission {
    Read,
    Write,
    ReadWrite,
}

impl S3Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadWrite => "READWRITE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Privilege {
    Default,
    Minimal,
}

impl S3Privilege {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "Default",
            Self::Minimal => "Minimal",
        }
    }
}

/// An S3 Access Grants request made with `GetDataAccess`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3AccessGrant {
    /// `s3://bucket/prefix*` or an object key.
    pub target: String,
    pub permission: S3Permission,
    pub privilege: S3Privilege,
    /// Account of the Access Grants instance.
    pub account_id: String,
    pub region: String,
    pub duration: Duration,
}

/// Settings of the AWS side of the exchange.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Identity Center customer-managed application ARN, the `clientId` of `CreateTokenWithIAM`.
    pub application_arn: String,
    /// Identity Center home region, where `CreateTokenWithIAM` is called.
    pub idc_region: String,
    /// Region of the STS calls: the profile's `region`, else the Identity Center region.
    pub sts_region: String,
    pub exchange: ExchangePrincipal,
    /// Identity-enhanced role assumed with `ProvidedContexts`.
    pub role_arn: String,
    pub session_duration: Duration,
    pub s3: Option<S3AccessGrant>,
    /// Cached AWS credentials are served only while more than this remains.
    pub refresh_window: Duration,
}

/// One profile's section, read from the AWS config and credentials files.
pub struct Profile {
    name: String,
    sections: ProfileSet,
    config_file: String,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The section may hold `tip_client_secret` or AWS keys, so only the name is shown.
        f.debug_struct("Profile")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`{}` is not valid UTF-8 (first at line {line}); the AWS CLI cannot read it either, so save it as UTF-8", path.display())]
    NotUtf8 { path: PathBuf, line: usize },

    #[error("could not read the AWS config files")]
    Load(#[source] aws_config::profile::ProfileFileLoadError),

    #[error("profile `{profile}` was not found in {config_file}")]
    ProfileNotFound { profile: String, config_file: String },

    #[error("profile `{profile}`: `{key}` is missing; set it in that profile's section of {config_file}")]
    MissingKey {
        profile: String,
        key: &'static str,
        config_file: String,
    },

    #[error("profile `{profile}`: invalid `{key}` value `{value}`: {reason}")]
    InvalidValue {
        profile: String,
        key: &'static str,
        value: String,
        reason: String,
    },

    #[error("profile `{profile}`: {message}")]
    Conflict { profile: String, message: String },
}

impl Profile {
    /// Loads the AWS config and credentials files and selects the section of `name`.
    pub async fn load(env: &Env, fs: &Fs, name: &str) -> Result<Self, ConfigError> {
        // The SDK's parser logs a file that is not UTF-8 byte by byte, secrets included, so
        // both files are checked first and such a file is named without its content.
        let config_path = profile_file_path(env, "AWS_CONFIG_FILE", "config");
        let config_text = read_utf8(fs, config_path.as_deref()).await?;
        read_utf8(
            fs,
            profile_file_path(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials").as_deref(),
        )
        .await?;

        let sections =
            aws_config::profile::load(fs, env, &EnvConfigFiles::default(), Some(Cow::Owned(name.to_owned())))
                .await
                .map_err(ConfigError::Load)?;
        let mut config_file = match env.get("AWS_CONFIG_FILE") {
            Ok(path) if !path.is_empty() => format!("`{path}`"),
            _ => String::from("`~/.aws/config`"),
        };
        match config_text {
            None => config_file.push_str(" (the file does not exist)"),
            Some(text) if name != "default" && text.lines().any(|line| line.trim() == format!("[{name}]")) => {
                config_file.push_str(&format!(
                    " (its `[{name}]` section is ignored, because the config file names profile sections `[profile {name}]`)"
                ));
            }
            Some(_) => {}
        }
        if sections.get_profile(name).is_none() {
            return Err(ConfigError::ProfileNotFound {
                profile: name.to_owned(),
                config_file,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            sections,
            config_file,
        })
    }

    /// Returns the profile's `ca_bundle` setting, a PEM file of trusted root certificates.
    pub fn ca_bundle(&self) -> Option<&str> {
        self.get("ca_bundle")
    }

    /// Returns the trimmed value of `key`, treating an empty value as absent.
    fn get(&self, key: &str) -> Option<&str> {
        self.sections
            .get_profile(&self.name)
            .and_then(|profile| profile.get(key))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    fn require(&self, key: &'static str) -> Result<&str, ConfigError> {
        self.get(key).ok_or_else(|| self.missing(key))
    }

    fn missing_region(&self, key: &str, purpose: &str) -> ConfigError {
        ConfigError::Conflict {
            profile: self.name.clone(),
            message: format!(
                "neither `{key}` nor `region` is set; set one of them in {} to {purpose}",
                self.config_file
            ),
        }
    }

    fn missing(&self, key: &'static str) -> ConfigError {
        ConfigError::MissingKey {
            profile: self.name.clone(),
            key,
            config_file: self.config_file.clone(),
        }
    }

    fn invalid(&self, key: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            profile: self.name.clone(),
            key,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn seconds(&self, key: &'static str, default: i64, min: i64, max: i64) -> Result<Duration, ConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(Duration::seconds(default));
        };
        let seconds: i64 = value
            .parse()
            .map_err(|_| self.invalid(key, value, "expected a whole number of seconds"))?;
        if !(min..=max).contains(&seconds) {
            return Err(self.invalid(key, value, format!("expected {min} to {max} seconds")));
        }
        Ok(Duration::seconds(seconds))
    }

    pub fn oidc_settings(&self) -> Result<OidcSettings, ConfigError> {
        let issuer = self.get("tip_issuer").unwrap_or(DEFAULT_ISSUER);
        let issuer_url = Url::parse(issuer).map_err(|e| self.invalid("tip_issuer", issuer, e.to_string()))?;
        match issuer_url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&issuer_url) => {}
            "http" => {
                return Err(self.invalid(
                    "tip_issuer",
                    issuer,
                    "a plain `http` issuer is accepted only on a loopback address; use `https`",
                ));
            }
            _ => return Err(self.invalid("tip_issuer", issuer, "expected an `https` URL")),
        }
        if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
            return Err(self.invalid("tip_issuer", issuer, "an issuer has no query or fragment"));
        }

        let client_id = self.require("tip_client_id")?.to_owned();
        let client_secret = self.get("tip_client_secret").map(|s| Secret::new(s.to_owned()));

        let redirect = self.get("tip_redirect_uri").unwrap_or(DEFAULT_REDIRECT_URI);
        let redirect_uri =
            Url::parse(redirect).map_err(|e| self.invalid("tip_redirect_uri", redirect, e.to_string()))?;
        let has_userinfo = !redirect_uri.username().is_empty() || redirect_uri.password().is_some();
        if redirect_uri.scheme() != "http" || !is_loopback_host(&redirect_uri) || has_userinfo {
            return Err(self.invalid(
                "tip_redirect_uri",
                redirect,
                "expected an `http` URL on `localhost`, `127.0.0.1` or `[::1]`, with no user name or password",
            ));
        }
        if redirect_uri.query().is_some() || redirect_uri.fragment().is_some() || redirect_uri.path() == "/" {
            return Err(self.invalid(
                "tip_redirect_uri",
                redirect,
                "expected a path such as `/authorize` and no query or fragment",
            ));
        }

        let scopes: Vec<String> = self
            .get("tip_scopes")
            .unwrap_or(DEFAULT_SCOPES)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !scopes.iter().any(|scope| scope == "openid") {
            let value = scopes.join(" ");
            return Err(self.invalid("tip_scopes", &value, "the `openid` scope is required"));
        }

        Ok(OidcSettings {
            issuer: issuer.to_owned(),
            client_id,
            client_secret,
            redirect_uri,
            scopes,
        })
    }

    pub fn aws_settings(&self) -> Result<AwsSettings, ConfigError> {
        let application_arn = self.require("tip_application_arn")?;
        if !is_arn(application_arn, "sso", ":application/") {
            return Err(self.invalid(
                "tip_application_arn",
                application_arn,
                "expected `arn:aws:sso::ACCOUNT:application/ssoins-.../apl-...`",
            ));
        }

        let region = self.get("region");
        let idc_region = match (self.get("tip_idc_region"), region) {
            (Some(value), _) => self.region("tip_idc_region", value)?,
            (None, Some(value)) => self.region("region", value)?,
            (None, None) => return Err(self.missing_region("tip_idc_region", "the Identity Center home region")),
        };
        let sts_region = match region {
            Some(value) => self.region("region", value)?,
            None => idc_region.clone(),
        };

        let role_arn = self.require("tip_role_arn")?;
        self.role_arn("tip_role_arn", role_arn)?;

        let exchange_role = self.get("tip_exchange_role_arn");
        if let Some(arn) = exchange_role {
            self.role_arn("tip_exchange_role_arn", arn)?;
        }
        let exchange = match (self.get("tip_source_profile"), exchange_role) {
            (None, Some(role_arn)) => ExchangePrincipal::WebIdentityRole {
                role_arn: role_arn.to_owned(),
            },
            (Some(profile), None) => ExchangePrincipal::SourceProfile {
                profile: profile.to_owned(),
            },
            (Some(profile), Some(role_arn)) => ExchangePrincipal::SourceProfileRole {
                profile: profile.to_owned(),
                role_arn: role_arn.to_owned(),
            },
            (None, None) => {
                return Err(ConfigError::Conflict {
                    profile: self.name.clone(),
                    message: format!(
                        "set `tip_exchange_role_arn` or `tip_source_profile` (or both) in {} to name the \
                         principal that signs CreateTokenWithIAM",
                        self.config_file
                    ),
                });
            }
        };
        if let ExchangePrincipal::SourceProfile { profile } | ExchangePrincipal::SourceProfileRole { profile, .. } =
            &exchange
        {
            if profile == &self.name {
                return Err(self.invalid(
                    "tip_source_profile",
                    profile,
                    "a profile cannot be its own source profile, because its credential_process would call itself",
                ));
            }
            self.check_source_chain(profile)?;
        }

        let session_duration = self.seconds(
            "tip_session_duration",
            DEFAULT_SESSION_DURATION_SECONDS,
            MIN_DURATION_SECONDS,
            MAX_DURATION_SECONDS,
        )?;
        let refresh_window = self.seconds(
            "tip_refresh_window",
            DEFAULT_REFRESH_WINDOW_SECONDS,
            0,
            MAX_DURATION_SECONDS,
        )?;

        let s3 = match self.get("tip_s3_target") {
            Some(target) => Some(self.s3_access_grant(target, region)?),
            None => None,
        };

        // Credentials that never outlive the refresh window would be fetched again on every call.
        let shortest = s3
            .as_ref()
            .map_or(session_duration, |grant| grant.duration.min(session_duration));
        if shortest <= refresh_window {
            return Err(ConfigError::Conflict {
                profile: self.name.clone(),
                message: format!(
                    "`tip_refresh_window` ({} s) must be shorter than the credential lifetime ({} s); lower \
                     `tip_refresh_window` or raise `tip_session_duration`/`tip_s3_duration`",
                    refresh_window.whole_seconds(),
                    shortest.whole_seconds()
                ),
            });
        }

        Ok(AwsSettings {
            application_arn: application_arn.to_owned(),
            idc_region,
            sts_region,
            exchange,
            role_arn: role_arn.to_owned(),
            session_duration,
            s3,
            refresh_window,
        })
    }

    /// Rejects a source profile chain that loops, or that runs aws-tip for this profile's own
    /// application. `credential-process` holds that application's lock while it loads the
    /// source credentials, so the inner call would wait for the outer one forever.
    fn check_source_chain(&self, source: &str) -> Result<(), ConfigError> {
        let own_client = self.get("tip_client_id");
        let own_issuer = self.get("tip_issuer").unwrap_or(DEFAULT_ISSUER);
        let mut chain = vec![self.name.clone()];
        let mut next = Some(source.to_owned());
        while let Some(name) = next {
            if chain.contains(&name) {
                chain.push(name);
                return Err(ConfigError::Conflict {
                    profile: self.name.clone(),
                    message: format!("the source profile chain `{}` loops", chain.join("` -> `")),
                });
            }
            let Some(profile) = self.sections.get_profile(&name) else {
                // A missing profile is reported by the SDK when the credentials are loaded.
                return Ok(());
            };
            let value = |key| profile.get(key).map(str::trim).filter(|v| !v.is_empty());
            let runs_same_app = value("credential_process").is_some()
                && value("tip_client_id").is_some()
                && value("tip_client_id") == own_client
                && value("tip_issuer").unwrap_or(DEFAULT_ISSUER) == own_issuer;
            if runs_same_app {
                return Err(ConfigError::Conflict {
                    profile: self.name.clone(),
                    message: format!(
                        "source profile `{name}` gets its credentials from aws-tip for the same application, \
                         which would wait for this call forever; use a profile with other credentials"
                    ),
                });
            }
            // An aws-tip profile's own credential_process names that same profile; any other
            // profile it names is the next hop.
            let process_target = value("credential_process")
                .and_then(aws_tip_profile)
                .filter(|target| *target != name);
            chain.push(name);
            next = value("tip_source_profile")
                .or_else(|| value("source_profile"))
                .map(str::to_owned)
                .or(process_target);
        }
        Ok(())
    }

    fn s3_access_grant(&self, target: &str, region: Option<&str>) -> Result<S3AccessGrant, ConfigError> {
        if !target.starts_with("s3://") || target.len() <= "s3://".len() || target.len() > 2000 {
            return Err(self.invalid(
                "tip_s3_target",
                target,
                "expected `s3://bucket/prefix*` of at most 2000 characters",
            ));
        }
        let permission = match self.get("tip_s3_permission").map(str::to_ascii_uppercase).as_deref() {
            None | Some("READ") => S3Permission::Read,
            Some("WRITE") => S3Permission::Write,
            Some("READWRITE") => S3Permission::ReadWrite,
            Some(other) => {
                return Err(self.invalid("tip_s3_permission", other, "expected `READ`, `WRITE` or `READWRITE`"));
            }
        };
        let privilege = match self.get("tip_s3_privilege").map(str::to_ascii_lowercase).as_deref() {
            None | Some("default") => S3Privilege::Default,
            Some("minimal") => S3Privilege::Minimal,
            Some(other) => return Err(self.invalid("tip_s3_privilege", other, "expected `Default` or `Minimal`")),
        };
        let account_id = self.require("tip_s3_account_id")?;
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid("tip_s3_account_id", account_id, "expected a 12-digit AWS account ID"));
        }
        let region = match (self.get("tip_s3_region"), region) {
            (Some(value), _) => self.region("tip_s3_region", value)?,
            (None, Some(value)) => self.region("region", value)?,
            (None, None) => {
                return Err(self.missing_region("tip_s3_region", "the region of the Access Grants instance"));
            }
        };
        let duration = self.seconds(
            "tip_s3_duration",
            DEFAULT_SESSION_DURATION_SECONDS,
            MIN_DURATION_SECONDS,
            MAX_DURATION_SECONDS,
        )?;
        Ok(S3AccessGrant {
            target: target.to_owned(),
            permission,
            privilege,
            account_id: account_id.to_owned(),
            region,
            duration,
        })
    }

    fn region(&self, key: &'static str, value: &str) -> Result<String, ConfigError> {
        let valid = value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(value.to_owned())
        } else {
            Err(self.invalid(key, value, "expected a region name such as `us-east-1`"))
        }
    }

    fn role_arn(&self, key: &'static str, value: &str) -> Result<(), ConfigError> {
        if is_arn(value, "iam", ":role/") {
            Ok(())
        } else {
            Err(self.invalid(key, value, "expected `arn:aws:iam::ACCOUNT:role/NAME`"))
        }
    }
}

/// Returns the profile that a `credential_process` command such as
/// `/usr/local/bin/aws-tip credential-process --profile NAME` runs aws-tip for.
fn aws_tip_profile(command: &str) -> Option<String> {
    let words: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.trim_matches(['"', '\'']))
        .collect();
    let runs_aws_tip = words
        .first()
        .is_some_and(|program| Path::new(program).file_stem().is_some_and(|stem| stem == "aws-tip"));
    if !runs_aws_tip || !words.contains(&"credential-process") {
        return None;
    }
    words
        .iter()
        .enumerate()
        .find_map(|(i, word)| match word.strip_prefix("--profile") {
            Some("") => words.get(i + 1).map(|name| (*name).to_owned()),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        })
}

/// Returns the path of a profile file: the variable's value, else `~/.aws/NAME`, with a
/// leading `~/` expanded as the SDK does. `None` when there is no home directory.
fn profile_file_path(env: &Env, variable: &str, name: &str) -> Option<PathBuf> {
    let home = env
        .get("HOME")
        .ok()
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(dirs::home_dir);
    match env.get(variable) {
        Ok(path) if !path.is_empty() => match path.strip_prefix("~/") {
            Some(rest) => home.map(|home| home.join(rest)),
            None => Some(PathBuf::from(path)),
        },
        _ => home.map(|home| home.join(".aws").join(name)),
    }
}

/// Reads a profile file as text; `None` when it does not exist or cannot be read (the SDK's
/// parser then treats it as empty).
async fn read_utf8(fs: &Fs, path: Option<&Path>) -> Result<Option<String>, ConfigError> {
    let Some(path) = path else { return Ok(None) };
    let Ok(bytes) = fs.read_to_end(path).await else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        ConfigError::NotUtf8 {
            path: path.to_owned(),
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })
}

/// Checks the shape `arn:PARTITION:SERVICE::...RESOURCE_MARKER...`.
fn is_arn(value: &str, service: &str, resource_marker: &str) -> bool {
    let mut parts = value.splitn(6, ':');
    parts.next() == Some("arn")
        && parts.next().is_some_and(|partition| !partition.is_empty())
        && parts.next() == Some(service)
        && value.contains(resource_marker)
}

/// Returns true when a URL's host is `localhost` or a loopback IP address.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "arn:aws:sso::222222222222:application/ssoins-1111111111111111/apl-2222222222222222";
    const ROLE: &str = "arn:aws:iam::111111111111:role/IdentityBearer";
    const EXCHANGE: &str = "arn:aws:iam::111111111111:role/Exchange";

    async fn load(config: &str, credentials: &str, name: &str) -> Result<Profile, ConfigError> {
        let fs = Fs::from_slice(&[("/cfg", config), ("/creds", credentials)]);
        let env = Env::from_slice(&[("AWS_CONFIG_FILE", "/cfg"), ("AWS_SHARED_CREDENTIALS_FILE", "/creds")]);
        Profile::load(&env, &fs, name).await
    }

    fn minimal(extra: &str) -> String {
        format!(
            "[profile p]\nregion = us-east-1\ntip_client_id = cid\ntip_application_arn = {APP}\n\
             tip_role_arn = {ROLE}\ntip_exchange_role_arn = {EXCHANGE}\n{extra}"
        )
    }

    #[tokio::test]
    async fn defaults_apply() {
        let profile = load(&minimal(""), "", "p").await.unwrap();
        let oidc = profile.oidc_settings().unwrap();
        assert_eq!(oidc.issuer, DEFAULT_ISSUER);
        assert_eq!(oidc.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
        assert_eq!(oidc.scopes, ["openid", "email", "offline_access"]);
        assert!(oidc.client_secret.is_none());

        let aws = profile.aws_settings().unwrap();
        assert_eq!(aws.idc_region, "us-east-1");
        assert_eq!(aws.sts_region, "us-east-1");
        assert_eq!(aws.session_duration, Duration::seconds(3600));
        assert_eq!(aws.refresh_window, Duration::seconds(1200));
        assert_eq!(
            aws.exchange,
            ExchangePrincipal::WebIdentityRole {
                role_arn: EXCHANGE.into()
            }
        );
        assert!(aws.s3.is_none());
    }

    #[tokio::test]
    async fn secret_from_credentials_file() {
        let profile = load(&minimal(""), "[p]\ntip_client_secret = s3cr3t\n", "p")
            .await
            .unwrap();
        let oidc = profile.oidc_settings().unwrap();
        assert_eq!(oidc.client_secret.unwrap().expose(), "s3cr3t");
    }

    #[tokio::test]
    async fn debug_hides_secret() {
        let profile = load(&minimal("tip_client_secret = sentinel-secret\n"), "", "p")
            .await
            .unwrap();
        let oidc = profile.oidc_settings().unwrap();
        let rendered = format!("{profile:?} {oidc:?}");
        assert!(!rendered.contains("sentinel-secret"), "{rendered}");
    }

    #[tokio::test]
    async fn missing_profile_named() {
        let err = load(&minimal(""), "", "other").await.unwrap_err();
        assert!(
            err.to_string().contains("profile `other` was not found in `/cfg`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_client_id_named() {
        let err = load("[profile p]\n", "", "p")
            .await
            .unwrap()
            .oidc_settings()
            .unwrap_err();
        assert!(err.to_string().contains("`tip_client_id` is missing"), "{err}");
    }

    #[tokio::test]
    async fn plain_http_issuer_only_on_loopback() {
        let ok = load(&minimal("tip_issuer = http://127.0.0.1:9000\n"), "", "p")
            .await
            .unwrap();
        assert!(ok.oidc_settings().is_ok());
        let bad = load(&minimal("tip_issuer = http://idp.example.com/\n"), "", "p")
            .await
            .unwrap();
        let err = bad.oidc_settings().unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[tokio::test]
    async fn redirect_must_be_loopback() {
        let bad = load(
            &minimal("tip_redirect_uri = http://example.com:5000/authorize\n"),
            "",
            "p",
        )
        .await
        .unwrap();
        assert!(bad.oidc_settings().is_err());
        let ok = load(&minimal("tip_redirect_uri = http://127.0.0.1:0/cb\n"), "", "p")
            .await
            .unwrap();
        assert_eq!(ok.oidc_settings().unwrap().redirect_uri.port(), Some(0));
    }

    #[tokio::test]
    async fn scopes_need_openid() {
        let bad = load(&minimal("tip_scopes = email\n"), "", "p").await.unwrap();
        assert!(bad.oidc_settings().unwrap_err().to_string().contains("openid"));
    }

    #[tokio::test]
    async fn exchange_principal_required() {
        let config = format!(
            "[profile p]\nregion = us-east-1\ntip_client_id = c\ntip_application_arn = {APP}\ntip_role_arn = {ROLE}\n"
        );
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(err.to_string().contains("tip_exchange_role_arn"), "{err}");
    }

    #[tokio::test]
    async fn source_profile_with_role() {
        let profile = load(&minimal("tip_source_profile = base\n"), "", "p").await.unwrap();
        assert_eq!(
            profile.aws_settings().unwrap().exchange,
            ExchangePrincipal::SourceProfileRole {
                profile: "base".into(),
                role_arn: EXCHANGE.into()
            }
        );
    }

    #[tokio::test]
    async fn source_profile_not_itself() {
        let profile = load(&minimal("tip_source_profile = p\n"), "", "p").await.unwrap();
        assert!(
            profile
                .aws_settings()
                .unwrap_err()
                .to_string()
                .contains("its own source profile")
        );
    }

    #[tokio::test]
    async fn source_chain_loop_rejected() {
        let config = format!(
            "{}[profile a]\nsource_profile = b\n\n[profile b]\nsource_profile = a\n",
            minimal("tip_source_profile = a\n")
        );
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(err.to_string().contains("`p` -> `a` -> `b` -> `a` loops"), "{err}");
    }

    #[tokio::test]
    async fn source_back_to_profile_rejected() {
        let config = format!(
            "{}[profile a]\ntip_source_profile = p\n",
            minimal("tip_source_profile = a\n")
        );
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(err.to_string().contains("`p` -> `a` -> `p` loops"), "{err}");
    }

    #[tokio::test]
    async fn source_process_loop_rejected() {
        let config = format!(
            "{}[profile other]\ncredential_process = \"/opt/bin/aws-tip\" credential-process --profile=p\n",
            minimal("tip_source_profile = other\n")
        );
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(err.to_string().contains("`p` -> `other` -> `p` loops"), "{err}");
    }

    #[test]
    fn aws_tip_profile_parsed() {
        assert_eq!(
            aws_tip_profile("aws-tip credential-process --profile a").as_deref(),
            Some("a")
        );
        assert_eq!(
            aws_tip_profile("/x/aws-tip.exe credential-process --profile=b").as_deref(),
            Some("b")
        );
        assert_eq!(aws_tip_profile("other-tool credential-process --profile a"), None);
        assert_eq!(aws_tip_profile("aws-tip login --profile a"), None);
    }

    #[tokio::test]
    async fn source_same_application_rejected() {
        let config = format!(
            "{}[profile other]\ntip_client_id = cid\ncredential_process = aws-tip credential-process --profile other\n",
            minimal("tip_source_profile = other\n")
        );
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(err.to_string().contains("same application"), "{err}");
    }

    #[tokio::test]
    async fn source_other_application_accepted() {
        let config = format!(
            "{}[profile other]\ntip_client_id = another-client\ncredential_process = aws-tip credential-process --profile other\n",
            minimal("tip_source_profile = other\n")
        );
        assert!(load(&config, "", "p").await.unwrap().aws_settings().is_ok());
    }

    #[tokio::test]
    async fn region_required() {
        let config = minimal("").replace("region = us-east-1\n", "");
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(
            err.to_string().contains("neither `tip_idc_region` nor `region` is set"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn invalid_region_names_its_key() {
        let config = minimal("").replace("region = us-east-1", "region = US-EAST-1");
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(err.to_string().contains("invalid `region` value `US-EAST-1`"), "{err}");
    }

    #[tokio::test]
    async fn non_utf8_file_named_not_printed() {
        let fs = Fs::from_raw_map(
            [
                ("/cfg".into(), minimal("").into_bytes()),
                (
                    "/creds".into(),
                    b"[p]\ntip_client_secret = sentinel-secret\n# caf\xe9\n".to_vec(),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let env = Env::from_slice(&[("AWS_CONFIG_FILE", "/cfg"), ("AWS_SHARED_CREDENTIALS_FILE", "/creds")]);
        let err = Profile::load(&env, &fs, "p").await.unwrap_err();
        let message = crate::error::chain(&err);
        assert_eq!(
            message,
            "`/creds` is not valid UTF-8 (first at line 3); the AWS CLI cannot read it either, so save it as UTF-8"
        );
    }

    #[tokio::test]
    async fn missing_config_file_noted() {
        let fs = Fs::from_slice(&[("/creds", "[p]\ntip_client_secret = s\n")]);
        let env = Env::from_slice(&[
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/creds"),
        ]);
        let profile = Profile::load(&env, &fs, "p").await.unwrap();
        let err = profile.oidc_settings().unwrap_err();
        assert!(
            err.to_string().contains("`/nonexistent` (the file does not exist)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unprefixed_section_noted() {
        let err = load("[p]\ntip_client_id = c\n", "", "p").await.unwrap_err();
        assert!(err.to_string().contains("its `[p]` section is ignored"), "{err}");
    }

    #[tokio::test]
    async fn redirect_userinfo_rejected() {
        let bad = load(
            &minimal("tip_redirect_uri = http://u:p@127.0.0.1:0/authorize\n"),
            "",
            "p",
        )
        .await
        .unwrap();
        assert!(bad.oidc_settings().is_err());
    }

    #[tokio::test]
    async fn idc_region_overrides() {
        let profile = load(&minimal("tip_idc_region = eu-west-1\n"), "", "p").await.unwrap();
        let aws = profile.aws_settings().unwrap();
        assert_eq!(aws.idc_region, "eu-west-1");
        assert_eq!(aws.sts_region, "us-east-1");
    }

    #[tokio::test]
    async fn s3_grant_parsed() {
        let extra = "tip_s3_target = s3://bucket/users*\ntip_s3_permission = readwrite\n\
                     tip_s3_privilege = minimal\ntip_s3_account_id = 111111111111\ntip_s3_duration = 7200\n";
        let aws = load(&minimal(extra), "", "p").await.unwrap().aws_settings().unwrap();
        let grant = aws.s3.unwrap();
        assert_eq!(grant.permission, S3Permission::ReadWrite);
        assert_eq!(grant.privilege, S3Privilege::Minimal);
        assert_eq!(grant.region, "us-east-1");
        assert_eq!(grant.duration, Duration::seconds(7200));
    }

    #[tokio::test]
    async fn s3_account_validated() {
        let extra = "tip_s3_target = s3://bucket/users*\ntip_s3_account_id = 12345\n";
        let err = load(&minimal(extra), "", "p")
            .await
            .unwrap()
            .aws_settings()
            .unwrap_err();
        assert!(err.to_string().contains("12-digit"), "{err}");
    }

    #[tokio::test]
    async fn durations_bounded() {
        for value in ["899", "43201", "abc", "-5"] {
            let extra = format!("tip_session_duration = {value}\n");
            let result = load(&minimal(&extra), "", "p").await.unwrap().aws_settings();
            assert!(result.is_err(), "{value} was accepted");
        }
    }

    #[tokio::test]
    async fn refresh_window_below_lifetime() {
        let extra = "tip_session_duration = 900\n";
        let err = load(&minimal(extra), "", "p")
            .await
            .unwrap()
            .aws_settings()
            .unwrap_err();
        assert!(err.to_string().contains("tip_refresh_window"), "{err}");
        let extra = "tip_session_duration = 900\ntip_refresh_window = 300\n";
        assert!(load(&minimal(extra), "", "p").await.unwrap().aws_settings().is_ok());
    }

    #[tokio::test]
    async fn role_arn_validated() {
        let config = minimal("").replace(ROLE, "not-an-arn");
        let err = load(&config, "", "p").await.unwrap().aws_settings().unwrap_err();
        assert!(err.to_string().contains("tip_role_arn"), "{err}");
    }
}
