//! End-to-end tests: the real `aws-tip` binary against a real OpenID provider
//! (`oidc-provider`) and the AWS stand-in, with the AWS CLI and boto3 as consumers.
//!
//! Each test starts its own servers on free loopback ports and a sandbox directory, so tests
//! run in parallel and leave nothing behind.

mod harness;

mod consumers;
mod credential_process;
mod demo;
mod login;
mod secrets;
