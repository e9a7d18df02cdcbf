//! Opening the authorization URL in the user's browser.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_types::os_shim_internal::Env;

/// Separator of the commands in `BROWSER`. It is `os.pathsep`, as in Python's `webbrowser` module,
/// so Windows paths such as `C:\…` stay whole.
const BROWSER_SEPARATOR: char = if cfg!(windows) { ';' } else { ':' };

/// Time after the start within which an error exit status most likely means that the browser did
/// not open the URL. The value is an estimate, and later error exits are not reported because they
/// are more likely the user closing the browser.
const EARLY_EXIT_WINDOW: Duration = Duration::from_secs(1);

/// Opens `url` with the commands in `BROWSER`, else with the system's opener
/// (`xdg-open` and its relatives, `open` on macOS, `start` on Windows).
///
/// `BROWSER` is a list of commands separated by `:` (`;` on Windows), tried in order until one
/// starts. Each command is split on whitespace into a program and its arguments, without
/// quoting, except that a command naming an existing file is one program whose path may contain
/// spaces. The URL replaces every `%s` in the arguments, or else is appended as the last one.
///
/// The child gets no stdin and no stdout or stderr, so it cannot read our input or write
/// into our output. It is not waited for, because a browser may keep running. A thread
/// reaps it and logs a warning when it exits with an error status within [`EARLY_EXIT_WINDOW`].
pub fn open_browser(env: &Env, url: &str) -> Result<(), String> {
    start_first(browser_commands(env, url)).map(|_reaper| ())
}

/// Builds the commands from `BROWSER`, or the system's openers when it names none.
fn browser_commands(env: &Env, url: &str) -> Vec<Command> {
    let configured = env
        .get("BROWSER")
        .map(|list| commands_from_list(&list, url))
        .unwrap_or_default();
    if configured.is_empty() {
        open::commands(url)
    } else {
        configured
    }
}

/// Parses a `BROWSER` value, skipping empty entries.
fn commands_from_list(list: &str, url: &str) -> Vec<Command> {
    list.split(BROWSER_SEPARATOR)
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| command_from_entry(entry, url))
        .collect()
}

/// Builds the command for one non-empty `BROWSER` entry.
fn command_from_entry(entry: &str, url: &str) -> Command {
    if Path::new(entry).exists() {
        let mut command = Command::new(entry);
        command.arg(url);
        return command;
    }

    let mut words = entry.split_whitespace();
    let program = words.next().expect("a trimmed, non-empty entry contains a word");
    let arguments: Vec<&str> = words.collect();
    let mut command = Command::new(program);
    if arguments.iter().any(|argument| argument.contains("%s")) {
        command.args(arguments.iter().map(|argument| argument.replace("%s", url)));
    } else {
        command.args(&arguments).arg(url);
    }
    command
}

/// Starts the first command that can be started and returns the thread that reaps it.
fn start_first(commands: Vec<Command>) -> Result<JoinHandle<()>, String> {
    let mut failures = Vec::new();
    for mut command in commands {
        // Security: only the program is logged, because the arguments contain the URL.
        let program = command.get_program().to_string_lossy().into_owned();
        match command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => {
                tracing::debug!(%program, "browser started");
                return Ok(spawn_reaper(child, program));
            }
            Err(error) => {
                tracing::debug!(%program, %error, "failed to start the browser");
                failures.push(format!("`{program}`: {error}"));
            }
        }
    }
    if failures.is_empty() {
        return Err("could not start a browser, because this system has no known opener".to_owned());
    }
    Err(format!("could not start a browser ({})", failures.join(", ")))
}

/// Waits for `child` on a new thread, which logs to the caller's tracing subscriber.
fn spawn_reaper(mut child: Child, program: String) -> JoinHandle<()> {
    let started = Instant::now();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || match child.wait() {
            Ok(status) if !status.success() && started.elapsed() <= EARLY_EXIT_WINDOW => {
                tracing::warn!(
                    %program,
                    %status,
                    "the browser exited with an error, so it may not have opened the sign-in page; open the printed URL yourself"
                );
            }
            Ok(status) => tracing::debug!(%program, %status, "browser exited"),
            Err(error) => tracing::debug!(%program, %error, "failed to wait for the browser"),
        });
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    const URL: &str = "https://idp.example/authorize?client_id=c&state=secret-state";

    fn arguments(command: &Command) -> Vec<&OsStr> {
        command.get_args().collect()
    }

    /// Log output collected in memory.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl LogBuffer {
        fn contents(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl io::Write for LogBuffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for LogBuffer {
        type Writer = LogBuffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Starts `browser` as `BROWSER` would, waits for it to exit and returns the log output.
    fn run_and_log(browser: &str) -> String {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let reaper = start_first(commands_from_list(browser, URL)).unwrap();
            reaper.join().unwrap();
        });
        logs.contents()
    }

    /// Writes an executable shell script that stores its arguments, one per line, in `arguments`.
    #[cfg(unix)]
    fn argument_recorder(script: &Path, arguments: &Path) {
        use std::os::unix::fs::PermissionsExt;

        let body = format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", arguments.display());
        std::fs::write(script, body).unwrap();
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn browser_list_split_in_order() {
        let commands = commands_from_list(" first-browser : :second-browser --new-window:", URL);
        let programs: Vec<&OsStr> = commands.iter().map(Command::get_program).collect();
        assert_eq!(programs, ["first-browser", "second-browser"]);
        assert_eq!(arguments(&commands[0]), [URL]);
        assert_eq!(arguments(&commands[1]), ["--new-window", URL]);
    }

    #[test]
    fn percent_s_replaced_by_url() {
        let command = command_from_entry("browser --url=%s --flag %s", URL);
        assert_eq!(command.get_program(), "browser");
        let expected_url_argument = format!("--url={URL}");
        assert_eq!(arguments(&command), [expected_url_argument.as_str(), "--flag", URL]);
    }

    #[test]
    fn program_never_replaced_by_url() {
        let command = command_from_entry("%s --flag", URL);
        assert_eq!(command.get_program(), "%s");
        assert_eq!(arguments(&command), ["--flag", URL]);
    }

    #[test]
    fn empty_list_uses_system_opener() {
        for value in ["", " ", "::"] {
            let env = Env::from_slice(&[("BROWSER", value)]);
            let programs: Vec<String> = browser_commands(&env, URL)
                .iter()
                .map(|command| command.get_program().to_string_lossy().into_owned())
                .collect();
            let system: Vec<String> = open::commands(URL)
                .iter()
                .map(|command| command.get_program().to_string_lossy().into_owned())
                .collect();
            assert_eq!(programs, system, "BROWSER={value:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn unstartable_browser_skipped() {
        let env = Env::from_slice(&[("BROWSER", "/nonexistent/browser:true")]);
        assert_eq!(open_browser(&env, URL), Ok(()));
    }

    #[cfg(unix)]
    #[test]
    fn no_startable_browser_reported() {
        let env = Env::from_slice(&[("BROWSER", "/nonexistent/browser-1:/nonexistent/browser-2")]);
        let err = open_browser(&env, URL).unwrap_err();
        assert!(err.contains("`/nonexistent/browser-1`"), "{err}");
        assert!(err.contains("`/nonexistent/browser-2`"), "{err}");
        assert!(!err.contains("secret-state"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn browser_gets_substituted_arguments() {
        let directory = tempfile::tempdir().unwrap();
        let script = directory.path().join("browser");
        let recorded = directory.path().join("arguments");
        argument_recorder(&script, &recorded);

        run_and_log(&format!("{} --new-window=%s --flag", script.display()));
        let expected = format!("--new-window={URL}\n--flag\n");
        assert_eq!(std::fs::read_to_string(&recorded).unwrap(), expected);
    }

    #[cfg(unix)]
    #[test]
    fn path_with_spaces_is_one_program() {
        let directory = tempfile::tempdir().unwrap();
        let script = directory.path().join("my browser --flag");
        let recorded = directory.path().join("arguments");
        argument_recorder(&script, &recorded);

        run_and_log(&script.display().to_string());
        assert_eq!(std::fs::read_to_string(&recorded).unwrap(), format!("{URL}\n"));
    }

    #[cfg(unix)]
    #[test]
    fn early_error_exit_warned() {
        let logs = run_and_log("false");
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains("program=false"), "{logs}");
        assert!(logs.contains("exit status: 1"), "{logs}");
        assert!(logs.contains("open the printed URL yourself"), "{logs}");
        assert!(!logs.contains("secret-state"), "{logs}");
    }

    #[cfg(unix)]
    #[test]
    fn successful_exit_not_warned() {
        let logs = run_and_log("true");
        assert!(!logs.contains("WARN"), "{logs}");
        assert!(logs.contains("browser exited"), "{logs}");
    }

    #[cfg(unix)]
    #[test]
    fn running_browser_not_waited_for() {
        let started = Instant::now();
        let reaper = start_first(commands_from_list("sleep 3 %s", "0")).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert!(!reaper.is_finished());
    }
}
