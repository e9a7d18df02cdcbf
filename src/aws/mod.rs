//! The AWS side of trusted identity propagation: from an ID token to AWS credentials.
//!
//! 1. The exchange principal: `AssumeRoleWithWebIdentity` with the ID token, or the
//!    credentials of `tip_source_profile` (optionally followed by `AssumeRole`).
//! 2. sso-oidc `CreateTokenWithIAM` with the JWT bearer grant, signed by that principal,
//!    returns the Identity Center identity context.
//! 3. STS `AssumeRole` on `tip_role_arn` with `ProvidedContexts`, signed by that principal,
//!    returns the identity-enhanced session.
//! 4. With `tip_s3_target`, S3 Control `GetDataAccess`, signed by the identity-enhanced
//!    session, returns credentials scoped to the S3 prefix.
//!
//! Every SDK client gets explicit credentials and an explicit region: none reads `AWS_PROFILE`,
//! the environment's AWS keys or the default credential chain.

mod error;
mod exchange;

pub use error::AwsError;
pub use exchange::Exchange;
