//! Opening the authorization URL in the user's browser.

use std::process::{Command, Stdio};

use aws_types::os_shim_internal::Env;

/// Opens `url` with the program named by `BROWSER`, else with the system's opener
/// (`xdg-open` and its relatives, `open` on macOS, `start` on Windows).
///
/// The child gets no stdin and no stdout or stderr, so it cannot read our input or write
/// into our output. It is not waited for, because a browser may keep running; a thread
/// reaps it when it exits.
pub fn open_browser(env: &Env, url: &str) -> Result<(), String> {
    let commands = match env.get("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => {
            let mut command = Command::new(browser.trim());
            command.arg(url);
            vec![command]
        }
        _ => open::commands(url),
    };
    let mut failures = Vec::new();
    for mut command in commands {
        let program = command.get_program().to_string_lossy().into_owned();
        match command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(mut child) => {
                tracing::debug!(%program, "browser started");
                std::thread::spawn(move || child.wait());
                return Ok(());
            }
            Err(error) => failures.push(format!("`{program}`: {error}")),
        }
    }
    Err(format!("could not start a browser ({})", failures.join(", ")))
}
