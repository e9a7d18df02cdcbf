//! Messages for the user on stderr. Together with `output`, the only module that prints.

#![allow(clippy::print_stderr, reason = "this module is the stderr reporter")]

use crate::error::{Error, chain};

/// Prints a status line.
pub fn status(message: &str) {
    eprintln!("{message}");
}

/// Prints an error on one line, plus a hint line when there is a next step to suggest.
pub fn report(error: &Error) {
    eprintln!("aws-tip: {}", chain(error));
    if let Error::Aws(aws) = error
        && let Some(hint) = aws.hint()
    {
        eprintln!("aws-tip: hint: {hint}");
    }
}
