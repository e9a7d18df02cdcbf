//! The subcommands.

mod credential_process;
mod login;

use std::sync::Arc;

use aws_types::os_shim_internal::{Env, Fs};

use crate::cli::Command;
use crate::clock::{Clock, SystemClock};
use crate::error::Error;

/// The environment, files and clock a command reads, injected so tests can replace them.
pub struct Context {
    pub env: Env,
    pub fs: Fs,
    pub clock: Arc<dyn Clock>,
}

impl Context {
    pub fn real() -> Self {
        Self {
            env: Env::real(),
            fs: Fs::real(),
            clock: Arc::new(SystemClock),
        }
    }
}

pub async fn run(context: &Context, command: Command) -> Result<(), Error> {
    match command {
        Command::Login(args) => login::run(context, &args).await,
        Command::CredentialProcess(args) => credential_process::run(context, &args.profile).await,
    }
}
