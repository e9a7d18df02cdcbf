//! Test fixtures: the stand-in servers, a sandbox with its own AWS config and cache, and a
//! builder that runs the real `aws-tip` binary (and the AWS CLI or boto3) against them.
//!
//! The stand-ins run as child processes on 127.0.0.1 with free ports and are killed when the
//! fixture is dropped. They need the test environment that `scripts/setup-test-env` installs
//! (a Python venv with the AWS CLI and boto3, and `npm ci` in `tests/standins/op`).

#![allow(
    clippy::disallowed_methods,
    reason = "the harness reads the real environment of the test run to pass it on"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "aws-tip-test";
pub const CLIENT_SECRET: &str = "aws-tip-test-secret";
pub const PUBLIC_CLIENT_ID: &str = "aws-tip-public";
pub const ACCOUNT_ID: &str = "111122223333";
pub const APPLICATION_ARN: &str = "arn:aws:sso::111122223333:application/ssoins-7223aaaa11112222/apl-1a2b3c4d5e6f7a8b";
pub const EXCHANGE_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/TipExchange";
pub const BEARER_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/TipIdentityBearer";
pub const USER_ID: &str = "9a6743f1-0001-4f7e-a1b2-000000000001";
pub const SOURCE_KEY_ID: &str = "AKIASOURCEEXAMPLE01";
pub const SOURCE_SECRET: &str = "source-secret-access-key-for-tests-0001";
pub const BUCKET: &str = "shopfast-data";
pub const OBJECT_KEY: &str = "users/user_list";
pub const OBJECT_BODY: &str = "id,name\n1,alice\n";

/// Returns the test environment's directory, which `AWS_TIP_TEST_ENV` moves as it does for
/// `scripts/setup-test-env`.
pub fn test_env_dir() -> PathBuf {
    std::env::var_os("AWS_TIP_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/test-env"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv_bin(name: &str) -> PathBuf {
    let path = test_env_dir().join("venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup-test-env` first",
        path.display()
    );
    path
}

fn standins() -> PathBuf {
    repo().join("tests/standins")
}

/// A child process killed on drop.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and waits for the stdout line starting with `marker`, returning the URL after it.
fn start_server(mut command: Command, marker: &str) -> (Server, String) {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = marker.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix(&prefix) {
                let _ = tx.send(url.trim().to_owned());
                break;
            }
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let server = Server { child };
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{marker} did not appear within 30 s"));
    (server, url)
}

/// Options of the stand-in OpenID provider.
#[derive(Clone, Debug)]
pub struct OpOptions {
    pub id_token_ttl: u32,
}

impl Default for OpOptions {
    fn default() -> Self {
        Self { id_token_ttl: 3600 }
    }
}

/// The OpenID provider and the AWS stand-in, and a sandbox directory for one test.
pub struct World {
    _op: Server,
    _aws: Server,
    pub op_url: String,
    pub aws_url: String,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn start() -> Self {
        Self::start_with(OpOptions::default())
    }

    pub fn start_with(options: OpOptions) -> Self {
        let mut op = Command::new("node");
        op.arg(standins().join("op/op.mjs"))
            .env("OP_PORT", "0")
            .env("OP_ID_TOKEN_TTL", options.id_token_ttl.to_string());
        let (op, op_url) = start_server(op, "OP_LISTENING ");

        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "account_id": ACCOUNT_ID,
            "region": "us-east-1",
            "idc_region": "us-east-2",
            "trusted_token_issuer": {"issuer": op_url, "audiences": [CLIENT_ID, PUBLIC_CLIENT_ID], "claim": "email"},
            "identity_store_users": {"alice@example.test": USER_ID},
            "application_arn": APPLICATION_ARN,
            "exchange_role_arn": EXCHANGE_ROLE_ARN,
            "source_keys": {SOURCE_KEY_ID: {"secret": SOURCE_SECRET, "arn": "arn:aws:iam::111122223333:user/tip-operator"}},
            "identity_bearer_role_arn": BEARER_ROLE_ARN,
            "access_grants": [{"grantee": USER_ID, "target": "s3://shopfast-data/users*", "permission": "READ"}],
            "objects": {"shopfast-data/users/user_list": OBJECT_BODY},
        });
        let config_path = dir.path().join("standin.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut aws = Command::new(venv_bin("python"));
        aws.arg(standins().join("aws_standin.py"))
            .arg("--config")
            .arg(&config_path);
        let (aws, aws_url) = start_server(aws, "AWS_STANDIN_LISTENING ");

        let world = Self {
            _op: op,
            _aws: aws,
            op_url,
            aws_url,
            dir,
        };
        std::fs::create_dir_all(world.home()).unwrap();
        world.write_config("");
        world.write_credentials("");
        world
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    /// Writes the AWS config file with the profiles `tip` (web identity exchange role), `tip-s3`
    /// (plus an S3 Access Grants target), `tip-source` (source profile `base` with static keys)
    /// and `tip-public` (public client), followed by `extra`.
    pub fn write_config(&self, extra: &str) {
        let exe = aws_tip_exe();
        let exe = exe.display();
        let op = &self.op_url;
        let common = format!(
            "region = us-east-1\ntip_issuer = {op}\ntip_redirect_uri = http://127.0.0.1:0/authorize\n\
             tip_idc_region = us-east-2\ntip_application_arn = {APPLICATION_ARN}\ntip_role_arn = {BEARER_ROLE_ARN}\n"
        );
        let config = format!(
            "[profile tip]\n{common}tip_client_id = {CLIENT_ID}\ntip_exchange_role_arn = {EXCHANGE_ROLE_ARN}\n\
             credential_process = {exe} credential-process --profile tip\n\n\
             [profile tip-s3]\n{common}tip_client_id = {CLIENT_ID}\ntip_exchange_role_arn = {EXCHANGE_ROLE_ARN}\n\
             tip_s3_target = s3://{BUCKET}/users*\ntip_s3_account_id = {ACCOUNT_ID}\n\
             credential_process = {exe} credential-process --profile tip-s3\n\n\
             [profile tip-source]\n{common}tip_client_id = {CLIENT_ID}\ntip_source_profile = base\n\
             credential_process = {exe} credential-process --profile tip-source\n\n\
             [profile tip-public]\n{common}tip_client_id = {PUBLIC_CLIENT_ID}\ntip_exchange_role_arn = {EXCHANGE_ROLE_ARN}\n\
             credential_process = {exe} credential-process --profile tip-public\n\n\
             [profile base]\nregion = us-east-1\n\n{extra}"
        );
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Writes the credentials file with the client secret of the `tip` profiles, the static keys
    /// of `base`, and `extra`.
    pub fn write_credentials(&self, extra: &str) {
        let credentials = format!(
            "[tip]\ntip_client_secret = {CLIENT_SECRET}\n\n[tip-s3]\ntip_client_secret = {CLIENT_SECRET}\n\n\
             [tip-source]\ntip_client_secret = {CLIENT_SECRET}\n\n\
             [base]\naws_access_key_id = {SOURCE_KEY_ID}\naws_secret_access_key = {SOURCE_SECRET}\n\n{extra}"
        );
        std::fs::write(self.credentials_path(), credentials).unwrap();
    }

    /// Environment shared by aws-tip, the AWS CLI and boto3: everything points at the sandbox
    /// and the stand-ins, and no AWS variable of the developer's shell leaks in.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for key in ["PATH", "LANG", "SYSTEMROOT", "TMPDIR"] {
            if let Ok(value) = std::env::var(key) {
                env.insert(key.to_owned(), value);
            }
        }
        let entries = [
            ("HOME", self.home().display().to_string()),
            ("AWS_CONFIG_FILE", self.config_path().display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                self.credentials_path().display().to_string(),
            ),
            ("AWS_TIP_CACHE_DIR", self.cache_dir().display().to_string()),
            ("AWS_ENDPOINT_URL_STS", self.aws_url.clone()),
            ("AWS_ENDPOINT_URL_SSO_OIDC", self.aws_url.clone()),
            // S3 Control puts the account ID in front of the host name, so its requests reach
            // the stand-in through the proxy. The `.invalid` domain never resolves to a real host.
            ("AWS_ENDPOINT_URL_S3_CONTROL", "http://s3-control.invalid".to_owned()),
            ("HTTP_PROXY", self.aws_url.clone()),
            ("NO_PROXY", "127.0.0.1,localhost,::1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("BROWSER", standins().join("browser.py").display().to_string()),
        ];
        for (key, value) in entries {
            env.insert(key.to_owned(), value);
        }
        env
    }

    pub fn aws_tip(&self) -> Run {
        Run::new(aws_tip_exe(), self.env())
    }

    pub fn aws_cli(&self) -> Run {
        Run::new(venv_bin("aws"), self.env())
    }

    pub fn python(&self) -> Run {
        Run::new(venv_bin("python"), self.env())
    }

    /// Signs in to `profile` through the scripted browser and asserts success.
    pub fn login(&self, profile: &str) -> Output {
        self.aws_tip()
            .args(["login", "--profile", profile, "--timeout", "60"])
            .success()
    }

    /// Call counts per operation, from the AWS stand-in.
    pub fn aws_calls(&self) -> BTreeMap<String, u64> {
        serde_json::from_str(&http_get(&format!("{}/_standin/calls", self.aws_url))).unwrap()
    }

    pub fn aws_call_count(&self, operation: &str) -> u64 {
        self.aws_calls().get(operation).copied().unwrap_or(0)
    }

    /// Makes the next `count` calls of `operation` fail with the modelled `error`.
    pub fn fail_next(&self, operation: &str, error: &str, count: u32) {
        let body = serde_json::json!({"operation": operation, "error": error, "count": count}).to_string();
        http_post(&format!("{}/_standin/fail", self.aws_url), &body);
    }

    pub fn tokens_file(&self) -> PathBuf {
        let entries: Vec<PathBuf> = std::fs::read_dir(self.cache_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".tokens.json"))
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.into_iter().next().unwrap()
    }

    pub fn tokens(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.tokens_file()).unwrap()).unwrap()
    }
}

pub fn aws_tip_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aws-tip"))
}

/// One run of a program with a controlled environment.
#[must_use]
pub struct Run {
    command: Command,
}

impl Run {
    fn new(program: impl AsRef<Path>, env: BTreeMap<String, String>) -> Self {
        let mut command = Command::new(program.as_ref());
        command.env_clear().envs(env).stdin(Stdio::null());
        Self { command }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn command(self) -> Command {
        self.command
    }

    /// Runs to completion, killing the process after two minutes.
    pub fn output(mut self) -> Output {
        let mut child = self
            .command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to start the program");
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("{:?} did not finish within 120 s", self.command);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[track_caller]
    pub fn success(self) -> Output {
        let output = self.output();
        assert!(
            output.status.success(),
            "exit {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    #[track_caller]
    pub fn failure(self, code: i32) -> Output {
        let output = self.output();
        assert_eq!(
            output.status.code(),
            Some(code),
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Parses the credential_process JSON and checks its shape.
#[track_caller]
pub fn credential_json(output: &Output) -> serde_json::Value {
    let text = stdout(output);
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "not one line: {text:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "AccessKeyId",
            "Expiration",
            "SecretAccessKey",
            "SessionToken",
            "Version"
        ]
    );
    assert_eq!(json["Version"], 1);
    json
}

/// Sends a plain HTTP/1.0 request to a stand-in control route and returns the body.
fn http_request(method: &str, url: &str, body: &str) -> String {
    use std::io::{Read, Write};

    let rest = url.strip_prefix("http://").expect("stand-in URLs are plain http");
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response has a header block");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{method} {url}: {head}"
    );
    body.to_owned()
}

fn http_get(url: &str) -> String {
    http_request("GET", url, "")
}

fn http_post(url: &str, body: &str) {
    http_request("POST", url, body);
}
