//! Errors of the AWS calls, sorted by what the user can do about them.

use aws_sdk_ssooidc::operation::create_token_with_iam::CreateTokenWithIAMError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::ErrorKind;

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
    SourceProfile { profile: String, detail: String },
}

impl AwsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rejected { retryable: true, .. } | Self::Unreachable { .. } => ErrorKind::Unavailable,
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::SourceProfile { .. } => ErrorKind::Configuration,
            Self::Failed { .. } | Self::MissingField { .. } => ErrorKind::Failed,
        }
    }

    /// Returns true when Identity Center rejected the ID token itself, which a fresh one may fix.
    pub fn is_assertion_rejected(&self) -> bool {
        matches!(self, Self::Rejected { operation: "CreateTokenWithIAM", code, .. } if code == "InvalidGrantException")
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
    pub fn from_sdk<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match &error {
            SdkError::ServiceError(context) => {
                let meta = context.err().meta();
                let code = meta.code().unwrap_or("UnknownError").to_owned();
                let retryable = matches!(
                    code.as_str(),
                    "Throttling"
                        | "ThrottlingException"
                        | "SlowDownException"
                        | "InternalServerException"
                        | "ServiceUnavailable"
                );
                Self::Rejected {
                    operation,
                    code,
                    message: meta.message().map(str::to_owned),
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
    pub fn from_create_token<R: std::fmt::Debug>(error: SdkError<CreateTokenWithIAMError, R>) -> Self {
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
            .map(str::to_owned)
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
