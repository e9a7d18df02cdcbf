//! Errors of the AWS calls, sorted by what the user can do about them.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ssooidc::operation::create_token_with_iam::CreateTokenWithIAMError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::ErrorKind;

/// Error codes that mean "try again later", though their HTTP status is below 500.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "SlowDownException",
    "IDPCommunicationError",
];

/// Joins the lines of a message from another program or service, so every error stays on
/// one line of stderr.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{operation} was rejected: {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Rejected {
        operation: &'static str,
        code: String,
        message: Option<String>,
        retryable: bool,
    },

    #[error("{operation} failed: could not reach the AWS endpoint: {detail}")]
    Unreachable { operation: &'static str, detail: String },

    #[error("{operation} failed: {detail}")]
    Failed { operation: &'static str, detail: String },

    #[error("{operation} returned no {field}")]
    MissingField {
        operation: &'static str,
        field: &'static str,
    },

    #[error("failed to load the credentials of source profile `{profile}`: {detail}")]
    SourceProfile {
        profile: String,
        detail: String,
        kind: ErrorKind,
    },
}

impl AwsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rejected { retryable: true, .. } | Self::Unreachable { .. } => ErrorKind::Unavailable,
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::SourceProfile { kind, .. } => *kind,
            Self::Failed { .. } | Self::MissingField { .. } => ErrorKind::Failed,
        }
    }

    /// Returns true when AWS rejected the ID token itself as expired or invalid, which a fresh
    /// one may fix (for example when the local clock runs behind).
    pub fn is_assertion_rejected(&self) -> bool {
        matches!(
            self,
            Self::Rejected { operation: "CreateTokenWithIAM", code, .. } if code == "InvalidGrantException"
        ) || matches!(
            self,
            Self::Rejected { operation: "AssumeRoleWithWebIdentity", code, .. } if code == "ExpiredTokenException"
        )
    }

    /// Sorts a failure to load a source profile's credentials.
    pub fn from_source_profile(profile: &str, error: &CredentialsError) -> Self {
        let kind = match error {
            CredentialsError::ProviderTimedOut(_) => ErrorKind::Unavailable,
            CredentialsError::ProviderError(_) => ErrorKind::Rejected,
            CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
                ErrorKind::Configuration
            }
            _ => ErrorKind::Failed,
        };
        Self::SourceProfile {
            profile: profile.to_owned(),
            detail: one_line(&crate::error::chain(error)),
            kind,
        }
    }

    /// Returns a next step for the user, when the error code suggests one.
    pub fn hint(&self) -> Option<&'static str> {
        let Self::Rejected { operation, code, .. } = self else {
            return None;
        };
        Some(match (*operation, code.as_str()) {
            ("CreateTokenWithIAM", "InvalidGrantException") => {
                "Identity Center did not accept the ID token: check that the trusted token issuer's URL equals the token's `iss`, that its authorized audiences include `tip_client_id`, and that a user with the token's email exists in Identity Center"
            }
            ("CreateTokenWithIAM", "AccessDeniedException") => {
                "the exchange principal is not allowed to call CreateTokenWithIAM: the application's authentication method (actor policy) and the principal's IAM policy must both allow `sso-oauth:CreateTokenWithIAM`"
            }
            ("CreateTokenWithIAM", "InvalidClientException") => {
                "check `tip_application_arn`: Identity Center does not know this application"
            }
            ("CreateTokenWithIAM", "InvalidRequestRegionException") => {
                "set `tip_idc_region` to the home region of the Identity Center instance"
            }
            ("CreateTokenWithIAM", "InvalidScopeException") => "the application lacks a requested access scope",
            ("AssumeRole", "InvalidContextAssertion") => {
                "STS did not accept the Identity Center identity context; check that `tip_idc_region` is the Identity Center home region and that the context was not altered"
            }
            ("AssumeRole", "AccessDenied") => {
                "the role's trust policy must allow `sts:AssumeRole` and `sts:SetContext` for the exchange principal"
            }
            ("AssumeRoleWithWebIdentity", "InvalidIdentityToken" | "AccessDenied") => {
                "the exchange role must trust an IAM OpenID Connect provider for `tip_issuer` with `tip_client_id` as audience"
            }
            ("AssumeRole" | "AssumeRoleWithWebIdentity", "ValidationError") => {
                "a role session assumed from another role session lasts at most 3600 seconds; check `tip_session_duration`"
            }
            ("GetDataAccess", "AccessDenied") => {
                "no S3 Access Grant covers this target and permission for the signed-in user; check `tip_s3_target` and `tip_s3_permission`"
            }
            _ => return None,
        })
    }

    /// Sorts an SDK error. Only error codes, service messages and transport errors are kept:
    /// a response that failed to parse is not rendered, because its body may hold credentials.
    pub fn from_sdk<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &error {
            SdkError::ServiceError(context) => {
                let meta = context.err().meta();
                let code = meta.code().unwrap_or("UnknownError").to_owned();
                // A server error or a throttling code means trying later may succeed. The AWS
                // SDK already retried these, so the call is over for now.
                let retryable = context.raw().status().is_server_error() || RETRYABLE_CODES.contains(&code.as_str());
                Self::Rejected {
                    operation,
                    code,
                    message: meta.message().map(one_line),
                    retryable,
                }
            }
            SdkError::TimeoutError(_) => Self::Unreachable {
                operation,
                detail: "the request timed out".into(),
            },
            SdkError::DispatchFailure(failure) => Self::Unreachable {
                operation,
                detail: failure
                    .as_connector_error()
                    .map_or_else(|| "dispatch failure".to_owned(), |e| crate::error::chain(e)),
            },
            SdkError::ResponseError(_) => Self::Failed {
                operation,
                detail: "the response could not be read".into(),
            },
            SdkError::ConstructionFailure(_) => Self::Failed {
                operation,
                detail: crate::error::chain(&error),
            },
            _ => Self::Failed {
                operation,
                detail: "unknown SDK error".into(),
            },
        }
    }

    /// Like [`AwsError::from_sdk`], but takes the `error_description` that sso-oidc errors
    /// carry in place of a message.
    pub fn from_create_token(error: SdkError<CreateTokenWithIAMError, HttpResponse>) -> Self {
        let description = error.as_service_error().and_then(|e| {
            match e {
                CreateTokenWithIAMError::InvalidGrantException(e) => e.error_description(),
                CreateTokenWithIAMError::AccessDeniedException(e) => e.error_description(),
                CreateTokenWithIAMError::InvalidClientException(e) => e.error_description(),
                CreateTokenWithIAMError::InvalidRequestException(e) => e.error_description(),
                CreateTokenWithIAMError::InvalidRequestRegionException(e) => e.error_description(),
                CreateTokenWithIAMError::InvalidScopeException(e) => e.error_description(),
                CreateTokenWithIAMError::UnauthorizedClientException(e) => e.error_description(),
                CreateTokenWithIAMError::ExpiredTokenException(e) => e.error_description(),
                _ => None,
            }
            .map(one_line)
        });
        let mut converted = Self::from_sdk("CreateTokenWithIAM", error);
        if let Self::Rejected { message, .. } = &mut converted
            && message.is_none()
        {
            *message = description;
        }
        converted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_message_joined() {
        assert_eq!(one_line("first line\r\n  second line\n\n"), "first line second line");
    }

    #[test]
    fn server_errors_retryable() {
        let server_error = AwsError::Rejected {
            operation: "AssumeRole",
            code: "InternalFailure".into(),
            message: None,
            retryable: true,
        };
        assert_eq!(server_error.kind(), ErrorKind::Unavailable);
        let denied = AwsError::Rejected {
            operation: "AssumeRole",
            code: "AccessDenied".into(),
            message: None,
            retryable: false,
        };
        assert_eq!(denied.kind(), ErrorKind::Rejected);
    }
}
