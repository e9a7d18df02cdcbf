//! The chain of AWS calls that turns an ID token into AWS credentials.

use std::time::SystemTime;

use aws_config::BehaviorVersion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::types::ProvidedContext;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::DateTime;
use aws_types::SdkConfig;
use aws_types::region::Region;
use serde::Deserialize;
use time::OffsetDateTime;

use super::AwsError;
use crate::config::{AwsSettings, ExchangePrincipal, S3AccessGrant};
use crate::http::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use crate::secret::Secret;

/// Provider ARN of the Identity Center context in `ProvidedContexts`.
const IDENTITY_CENTER_CONTEXT_PROVIDER: &str = "arn:aws:iam::aws:contextProvider/IdentityCenter";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The exchange principal signs two calls right away, so its session is the shortest STS allows.
const EXCHANGE_SESSION_SECONDS: i32 = 900;
const EXCHANGE_SESSION_NAME: &str = "aws-tip-exchange";
/// Maximum length of a role session name in STS.
const MAX_SESSION_NAME_LENGTH: usize = 64;

/// Temporary AWS credentials.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Secret<String>,
    pub expiration: OffsetDateTime,
}

impl AwsCredentials {
    fn from_parts(
        operation: &'static str,
        access_key_id: Option<&str>,
        secret_access_key: Option<&str>,
        session_token: Option<&str>,
        expiration: Option<&DateTime>,
    ) -> Result<Self, AwsError> {
        let missing = |field| AwsError::MissingField { operation, field };
        let expiration = expiration.ok_or_else(|| missing("Expiration"))?;
        Ok(Self {
            access_key_id: access_key_id.ok_or_else(|| missing("AccessKeyId"))?.to_owned(),
            secret_access_key: Secret::new(secret_access_key.ok_or_else(|| missing("SecretAccessKey"))?.to_owned()),
            session_token: Secret::new(session_token.ok_or_else(|| missing("SessionToken"))?.to_owned()),
            expiration: OffsetDateTime::from_unix_timestamp(expiration.secs()).map_err(|_| missing("Expiration"))?,
        })
    }

    fn from_sts(
        operation: &'static str,
        credentials: Option<&aws_sdk_sts::types::Credentials>,
    ) -> Result<Self, AwsError> {
        let credentials = credentials.ok_or(AwsError::MissingField {
            operation,
            field: "Credentials",
        })?;
        Self::from_parts(
            operation,
            Some(credentials.access_key_id()),
            Some(credentials.secret_access_key()),
            Some(credentials.session_token()),
            Some(credentials.expiration()),
        )
    }

    fn to_sdk(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            Some(self.session_token.expose().clone()),
            Some(SystemTime::from(self.expiration)),
            "aws-tip",
        )
    }
}

/// The result of the exchange.
#[derive(Debug)]
pub struct ExchangeOutput {
    pub credentials: AwsCredentials,
    pub role_session_arn: Option<String>,
    pub matched_grant_target: Option<String>,
}

/// The claims of the Identity Center ID token that aws-tip reads.
#[derive(Deserialize)]
struct IdentityCenterClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default, rename = "sts:identity_context")]
    identity_context: Option<String>,
}

/// The AWS calls of one profile.
#[derive(Debug)]
pub struct Exchange {
    base: SdkConfig,
    settings: AwsSettings,
    http: SharedHttpClient,
}

impl Exchange {
    /// Loads the SDK settings of `profile_name` (endpoint URLs, retry and FIPS settings),
    /// without its credentials.
    pub async fn new(profile_name: &str, settings: AwsSettings, http: SharedHttpClient) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .profile_name(profile_name)
            .no_credentials()
            .region(Region::new(settings.sts_region.clone()))
            .http_client(http.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(REQUEST_TIMEOUT)
                    .build(),
            )
            .load()
            .await;
        Self { base, settings, http }
    }

    /// Runs the whole chain for `id_token`.
    pub async fn run(&self, id_token: &Secret<String>) -> Result<ExchangeOutput, AwsError> {
        let exchange = self.exchange_principal(id_token).await?;
        let (identity_context, user_id) = self.create_token_with_iam(&exchange, id_token).await?;
        let (identity, role_session_arn) = self
            .assume_identity_role(&exchange, identity_context, user_id.as_deref())
            .await?;
        let Some(grant) = &self.settings.s3 else {
            return Ok(ExchangeOutput {
                credentials: identity,
                role_session_arn,
                matched_grant_target: None,
            });
        };
        let (credentials, matched_grant_target) = self.get_data_access(&identity, grant).await?;
        Ok(ExchangeOutput {
            credentials,
            role_session_arn,
            matched_grant_target,
        })
    }

    fn sts(&self, credentials: Option<Credentials>) -> aws_sdk_sts::Client {
        let mut config = aws_sdk_sts::config::Builder::from(&self.base);
        if let Some(credentials) = credentials {
            config = config.credentials_provider(credentials);
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }

    /// Returns the credentials of the exchange principal; source profile keys may be long-term
    /// keys without a session token or expiry.
    async fn exchange_principal(&self, id_token: &Secret<String>) -> Result<Credentials, AwsError> {
        const OPERATION: &str = "AssumeRoleWithWebIdentity";
        let _span = tracing::debug_span!("exchange_principal").entered();
        match &self.settings.exchange {
            ExchangePrincipal::WebIdentityRole { role_arn } => {
                tracing::debug!(%role_arn, "assuming the exchange role with the ID token");
                let output = self
                    .sts(None)
                    .assume_role_with_web_identity()
                    .role_arn(role_arn)
                    .role_session_name(EXCHANGE_SESSION_NAME)
                    .web_identity_token(id_token.expose())
                    .duration_seconds(EXCHANGE_SESSION_SECONDS)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(OPERATION, e))?;
                Ok(AwsCredentials::from_sts(OPERATION, output.credentials())?.to_sdk())
            }
            ExchangePrincipal::SourceProfile { profile } => self.source_profile_credentials(profile).await,
            ExchangePrincipal::SourceProfileRole { profile, role_arn } => {
                const OPERATION: &str = "AssumeRole";
                let source = self.source_profile_credentials(profile).await?;
                tracing::debug!(%role_arn, source_profile = %profile, "assuming the exchange role");
                let output = self
                    .sts(Some(source))
                    .assume_role()
                    .role_arn(role_arn)
                    .role_session_name(EXCHANGE_SESSION_NAME)
                    .duration_seconds(EXCHANGE_SESSION_SECONDS)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(OPERATION, e))?;
                Ok(AwsCredentials::from_sts(OPERATION, output.credentials())?.to_sdk())
            }
        }
    }

    /// Resolves `profile` the way the AWS SDK does (static keys, roles, credential_process,
    /// IAM Identity Center), but for that profile alone: never the environment's keys.
    async fn source_profile_credentials(&self, profile: &str) -> Result<Credentials, AwsError> {
        tracing::debug!(source_profile = %profile, "loading source profile credentials");
        let provider_config = ProviderConfig::without_region()
            .with_region(Some(Region::new(self.settings.sts_region.clone())))
            .with_http_client(self.http.clone());
        let provider = ProfileFileCredentialsProvider::builder()
            .configure(&provider_config)
            .profile_name(profile)
            .build();
        provider
            .provide_credentials()
            .await
            .map_err(|e| AwsError::from_source_profile(profile, &e))
    }

    /// Calls CreateTokenWithIAM and returns the identity context and the Identity Center user ID.
    async fn create_token_with_iam(
        &self,
        exchange: &Credentials,
        id_token: &Secret<String>,
    ) -> Result<(Secret<String>, Option<String>), AwsError> {
        const OPERATION: &str = "CreateTokenWithIAM";
        let _span = tracing::debug_span!("create_token_with_iam").entered();
        let config = aws_sdk_ssooidc::config::Builder::from(&self.base)
            .region(Region::new(self.settings.idc_region.clone()))
            .credentials_provider(exchange.clone())
            .build();
        let output = aws_sdk_ssooidc::Client::from_conf(config)
            .create_token_with_iam()
            .client_id(&self.settings.application_arn)
            .grant_type(JWT_BEARER_GRANT)
            .assertion(id_token.expose())
            .send()
            .await
            .map_err(AwsError::from_create_token)?;

        let claims = output
            .id_token()
            .and_then(|jwt| crate::oidc::decode_jwt_payload::<IdentityCenterClaims>(jwt).ok());
        let from_details = output
            .aws_additional_details()
            .and_then(|details| details.identity_context());
        let from_claim = claims.as_ref().and_then(|c| c.identity_context.as_deref());
        tracing::debug!(
            context_in_details = from_details.is_some(),
            context_in_claim = from_claim.is_some(),
            "received the Identity Center token"
        );
        let context = from_details.or(from_claim).ok_or(AwsError::MissingField {
            operation: OPERATION,
            field: "identity context (awsAdditionalDetails.identityContext or the sts:identity_context claim)",
        })?;
        Ok((Secret::new(context.to_owned()), claims.and_then(|c| c.sub)))
    }

    async fn assume_identity_role(
        &self,
        exchange: &Credentials,
        identity_context: Secret<String>,
        user_id: Option<&str>,
    ) -> Result<(AwsCredentials, Option<String>), AwsError> {
        const OPERATION: &str = "AssumeRole";
        let _span = tracing::debug_span!("assume_role").entered();
        let session_name = role_session_name(user_id);
        tracing::debug!(role_arn = %self.settings.role_arn, %session_name, "assuming the identity-enhanced role");
        let context = ProvidedContext::builder()
            .provider_arn(IDENTITY_CENTER_CONTEXT_PROVIDER)
            .context_assertion(identity_context.expose())
            .build();
        let duration = i32::try_from(self.settings.session_duration.whole_seconds()).unwrap_or(i32::MAX);
        let output = self
            .sts(Some(exchange.clone()))
            .assume_role()
            .role_arn(&self.settings.role_arn)
            .role_session_name(session_name)
            .provided_contexts(context)
            .duration_seconds(duration)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OPERATION, e))?;
        let arn = output.assumed_role_user().map(|user| user.arn().to_owned());
        Ok((AwsCredentials::from_sts(OPERATION, output.credentials())?, arn))
    }

    async fn get_data_access(
        &self,
        identity: &AwsCredentials,
        grant: &S3AccessGrant,
    ) -> Result<(AwsCredentials, Option<String>), AwsError> {
        const OPERATION: &str = "GetDataAccess";
        let _span = tracing::debug_span!("get_data_access").entered();
        tracing::debug!(target = %grant.target, permission = grant.permission.as_str(), "requesting S3 Access Grants credentials");
        let config = aws_sdk_s3control::config::Builder::from(&self.base)
            .region(Region::new(grant.region.clone()))
            .credentials_provider(identity.to_sdk())
            .build();
        let duration = i32::try_from(grant.duration.whole_seconds()).unwrap_or(i32::MAX);
        let output = aws_sdk_s3control::Client::from_conf(config)
            .get_data_access()
            .account_id(&grant.account_id)
            .target(&grant.target)
            .permission(grant.permission.as_str().into())
            .privilege(grant.privilege.as_str().into())
            .duration_seconds(duration)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OPERATION, e))?;
        let credentials = output.credentials().ok_or(AwsError::MissingField {
            operation: OPERATION,
            field: "Credentials",
        })?;
        let credentials = AwsCredentials::from_parts(
            OPERATION,
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token(),
            credentials.expiration(),
        )?;
        Ok((credentials, output.matched_grant_target().map(str::to_owned)))
    }
}

/// `aws-tip-USER`, with characters that STS rejects replaced by `-`, at most 64 characters.
fn role_session_name(user_id: Option<&str>) -> String {
    let name: String = format!("aws-tip-{}", user_id.unwrap_or("user"))
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(MAX_SESSION_NAME_LENGTH)
        .collect();
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_name_sanitized() {
        assert_eq!(role_session_name(Some("9a6743f1-0001")), "aws-tip-9a6743f1-0001");
        assert_eq!(role_session_name(Some("a b/c")), "aws-tip-a-b-c");
        assert_eq!(role_session_name(None), "aws-tip-user");
        assert_eq!(role_session_name(Some(&"x".repeat(100))).len(), 64);
    }
}
