//! `aws-tip`: AWS credentials from a JumpCloud (OpenID Connect) sign-in, through IAM
//! Identity Center trusted identity propagation, for the AWS CLI and SDKs'
//! `credential_process`.

mod aws;
mod cache;
mod cli;
mod clock;
mod commands;
mod config;
mod error;
mod http;
mod oidc;
mod output;
mod secret;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::error::Error;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);

    let context = commands::Context::real();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| runtime.block_on(commands::run(&context, cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            ui::report(&error);
            ExitCode::from(error.kind().exit_code())
        }
    }
}

/// Sends logs to stderr. `AWS_TIP_LOG` takes a tracing filter; otherwise `-v` enables
/// aws-tip's debug events and `-vv` adds the AWS SDK's. The SDK's trace level is never
/// enabled by `-v`, because it records request and response bodies.
fn init_logging(verbose: u8) {
    // Other crates stay silent by default: their warnings can quote files and responses
    // verbatim, and every failure that matters reaches the user as aws-tip's own error.
    let default = match verbose {
        0 => "off,aws_tip=warn",
        1 => "off,aws_tip=debug",
        _ => {
            "off,aws_tip=trace,aws_config=debug,aws_smithy_runtime=debug,aws_sdk_sts=debug,aws_sdk_ssooidc=debug,aws_sdk_s3control=debug"
        }
    };
    let filter = match aws_types::os_shim_internal::Env::real().get("AWS_TIP_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives).unwrap_or_else(|error| {
            ui::status(&format!("aws-tip: ignoring invalid `AWS_TIP_LOG` ({error})"));
            EnvFilter::new(default)
        }),
        _ => EnvFilter::new(default),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
}
