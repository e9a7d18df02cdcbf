//! No token, key or secret in any output other than the credential JSON on stdout.

use crate::harness::*;

#[test]
fn no_secret_in_any_output() {
    // A short ID token makes credential-process refresh, so the refresh path is logged too.
    let world = World::start_with(OpOptions { id_token_ttl: 200 });
    let mut stderr_text = String::new();

    let login = world
        .aws_tip()
        .args(["-vv", "login", "--profile", "tip", "--timeout", "60"])
        .success();
    stderr_text.push_str(&stderr(&login));
    let first_tokens = world.tokens();

    let mut json = Vec::new();
    for profile in ["tip", "tip-s3", "tip-source"] {
        let output = world
            .aws_tip()
            .args(["-vv", "credential-process", "--profile", profile])
            .success();
        stderr_text.push_str(&stderr(&output));
        json.push(credential_json(&output));
    }
    let last_tokens = world.tokens();

    let mut secrets: Vec<String> = vec![CLIENT_SECRET.to_owned(), SOURCE_SECRET.to_owned()];
    for tokens in [&first_tokens, &last_tokens] {
        for field in ["id_token", "refresh_token"] {
            secrets.push(tokens[field].as_str().unwrap().to_owned());
        }
    }
    for credentials in &json {
        for field in ["SecretAccessKey", "SessionToken"] {
            secrets.push(credentials[field].as_str().unwrap().to_owned());
        }
    }
    assert!(
        stderr_text.contains("refreshed and stored the ID token"),
        "the refresh path did not run:\n{stderr_text}"
    );
    for secret in &secrets {
        assert!(secret.len() >= 16, "secret too short to search for: {secret}");
        assert!(
            !stderr_text.contains(secret.as_str()),
            "a secret appeared on stderr:\n{stderr_text}"
        );
    }
}
