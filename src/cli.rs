//! Command-line arguments.

use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Default time `login` waits for the browser to come back.
const DEFAULT_LOGIN_TIMEOUT_SECONDS: u64 = 300;

#[derive(Debug, Parser)]
#[command(
    name = "aws-tip",
    version,
    about = "AWS credentials from a JumpCloud (OpenID Connect) sign-in, through IAM Identity Center trusted identity propagation",
    long_about = "AWS credentials from a JumpCloud (OpenID Connect) sign-in, through IAM Identity Center trusted \
                  identity propagation.\n\nSign in once with `aws-tip login --profile P`, then name \
                  `aws-tip credential-process --profile P` as the `credential_process` of profile P in \
                  ~/.aws/config. Settings are `tip_*` keys in that profile; see docs/configuration.md."
)]
pub struct Cli {
    /// Log decisions to stderr: -v for aws-tip's debug log, -vv to add the AWS SDK's. `AWS_TIP_LOG` takes a tracing filter instead
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in through the browser and store the tokens for every profile of that application
    Login(LoginArgs),

    /// Print AWS credentials as `credential_process` JSON on stdout; never opens a browser
    #[command(long_about = "Print AWS credentials as `credential_process` JSON on stdout.\n\n\
        Serves cached credentials while more than `tip_refresh_window` seconds remain; otherwise \
        refreshes the sign-in if needed and exchanges it for new credentials. It never opens a browser \
        and never reads stdin: when a new sign-in is needed it exits with code 3 and names the \
        `aws-tip login` command to run.")]
    CredentialProcess(ProfileArgs),
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Profile of the AWS config file whose `tip_*` settings to use
    #[arg(long, value_name = "PROFILE")]
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Profile of the AWS config file whose `tip_*` settings to use
    #[arg(long, value_name = "PROFILE", env = "AWS_PROFILE")]
    pub profile: String,

    /// Print the sign-in URL on stderr instead of opening a browser
    #[arg(long)]
    pub no_browser: bool,

    /// Seconds to wait for the browser to return to aws-tip
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_LOGIN_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

impl LoginArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn credential_process_requires_profile() {
        assert!(Cli::try_parse_from(["aws-tip", "credential-process"]).is_err());
        let cli = Cli::try_parse_from(["aws-tip", "credential-process", "--profile", "dev"]).unwrap();
        assert!(matches!(cli.command, Command::CredentialProcess(ProfileArgs { profile }) if profile == "dev"));
    }

    #[test]
    fn login_timeout_bounded() {
        assert!(Cli::try_parse_from(["aws-tip", "login", "--profile", "p", "--timeout", "0"]).is_err());
        let cli = Cli::try_parse_from(["aws-tip", "login", "--profile", "p", "--no-browser"]).unwrap();
        let Command::Login(args) = cli.command else {
            panic!("expected login")
        };
        assert!(args.no_browser);
        assert_eq!(args.timeout(), Duration::from_secs(300));
    }
}
