//! `aws-tip login`: the browser flow, where the tokens go, and how failures are reported.

use crate::harness::*;

#[test]
fn login_stores_private_tokens() {
    let world = World::start();
    let output = world.login("tip");
    assert!(output.stdout.is_empty(), "login wrote to stdout");
    let message = stderr(&output);
    assert!(
        message.contains("Signed in as alice@example.test (subject alice)"),
        "{message}"
    );
    assert!(message.contains("renews it with the stored refresh token"), "{message}");

    let tokens = world.tokens();
    assert_eq!(tokens["subject"], "alice");
    assert_eq!(tokens["client_id"], CLIENT_ID);
    assert!(tokens["refresh_token"].is_string());
    assert!(tokens["id_token"].as_str().unwrap().starts_with("ey"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file_mode = std::fs::metadata(world.tokens_file()).unwrap().permissions().mode();
        let dir_mode = std::fs::metadata(world.cache_dir()).unwrap().permissions().mode();
        assert_eq!(file_mode & 0o777, 0o600);
        assert_eq!(dir_mode & 0o777, 0o700);
    }
}

#[test]
fn login_public_client() {
    let world = World::start();
    world.login("tip-public");
    assert_eq!(world.tokens()["client_id"], PUBLIC_CLIENT_ID);
}

#[test]
fn login_shared_by_profiles_of_one_app() {
    let world = World::start();
    world.login("tip");
    let before = world.aws_call_count("CreateTokenWithIAM");
    world
        .aws_tip()
        .args(["credential-process", "--profile", "tip-s3"])
        .success();
    assert_eq!(world.aws_call_count("CreateTokenWithIAM"), before + 1);
}

#[test]
fn login_denied_reported() {
    let world = World::start();
    let output = world
        .aws_tip()
        .env("BROWSER_MODE", "deny")
        .args(["login", "--profile", "tip", "--timeout", "60"])
        .failure(4);
    assert!(stderr(&output).contains("access_denied"), "{}", stderr(&output));
    assert!(!world.cache_dir().join("x").exists());
}

#[test]
fn login_ignores_wrong_state() {
    let world = World::start();
    let output = world
        .aws_tip()
        .env("BROWSER_MODE", "wrong-state")
        .args(["login", "--profile", "tip", "--timeout", "5"])
        .failure(1);
    let message = stderr(&output);
    assert!(
        message.contains("no authorization response arrived within 5 seconds"),
        "{message}"
    );
    assert!(!world.cache_dir().exists() || std::fs::read_dir(world.cache_dir()).unwrap().count() == 0);
}

#[test]
fn login_no_browser_prints_url() {
    let world = World::start();
    let marker = world.dir.path().join("browser-started");
    let browser = world.dir.path().join("browser.sh");
    std::fs::write(&browser, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let output = world
        .aws_tip()
        .env("BROWSER", &browser)
        .args(["login", "--profile", "tip", "--no-browser", "--timeout", "2"])
        .failure(1);
    let message = stderr(&output);
    assert!(message.contains(&format!("{}/auth?", world.op_url)), "{message}");
    assert!(message.contains("code_challenge_method=S256"), "{message}");
    assert!(!marker.exists(), "--no-browser started the browser");
}

#[test]
fn login_busy_port_reported() {
    let world = World::start();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    world.write_config(&format!(
        "[profile busy]\ntip_issuer = {}\ntip_client_id = {CLIENT_ID}\ntip_redirect_uri = http://127.0.0.1:{port}/authorize\n",
        world.op_url
    ));
    let output = world.aws_tip().args(["login", "--profile", "busy"]).failure(2);
    assert!(stderr(&output).contains("tip_redirect_uri"), "{}", stderr(&output));
}

#[test]
fn login_wrong_secret_rejected() {
    let world = World::start();
    std::fs::write(world.credentials_path(), "[tip]\ntip_client_secret = wrong-secret\n").unwrap();
    let output = world
        .aws_tip()
        .args(["login", "--profile", "tip", "--timeout", "60"])
        .failure(4);
    assert!(stderr(&output).contains("invalid_client"), "{}", stderr(&output));
}

#[test]
fn login_unknown_profile_rejected() {
    let world = World::start();
    let output = world.aws_tip().args(["login", "--profile", "nope"]).failure(2);
    assert!(
        stderr(&output).contains("profile `nope` was not found"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn login_checks_ca_bundle() {
    let world = World::start();
    let missing = world.dir.path().join("missing.pem");
    let output = world
        .aws_tip()
        .env("AWS_CA_BUNDLE", &missing)
        .args(["login", "--profile", "tip"])
        .failure(2);
    assert!(
        stderr(&output).contains("failed to read the CA bundle"),
        "{}",
        stderr(&output)
    );

    let empty = world.dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let output = world
        .aws_tip()
        .env("AWS_CA_BUNDLE", &empty)
        .args(["login", "--profile", "tip"])
        .failure(2);
    assert!(
        stderr(&output).contains("contains no PEM certificate"),
        "{}",
        stderr(&output)
    );

    // The machine's own bundle is accepted; the stand-ins speak plain HTTP on loopback.
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        world
            .aws_tip()
            .env("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
            .args(["login", "--profile", "tip", "--timeout", "60"])
            .success();
    }
}
