//! `aws-tip credential-process`: the exchange, the cache, refresh, locking and exit codes.

use std::process::Stdio;

use crate::harness::*;

fn credential_process(world: &World, profile: &str) -> serde_json::Value {
    credential_json(
        &world
            .aws_tip()
            .args(["credential-process", "--profile", profile])
            .success(),
    )
}

#[test]
fn first_call_runs_chain() {
    let world = World::start();
    world.login("tip");
    let json = credential_process(&world, "tip");
    let expiration = json["Expiration"].as_str().unwrap();
    assert_eq!(expiration.len(), "2026-12-04T21:00:00Z".len(), "{expiration}");
    assert!(expiration.ends_with('Z'), "{expiration}");
    assert_eq!(world.aws_call_count("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(world.aws_call_count("CreateTokenWithIAM"), 1);
    assert_eq!(world.aws_call_count("AssumeRole"), 1);
    assert_eq!(world.aws_call_count("GetDataAccess"), 0);
}

#[test]
fn second_call_served_from_cache() {
    let world = World::start();
    world.login("tip");
    let first = credential_process(&world, "tip");
    let calls = world.aws_calls();
    let second = credential_process(&world, "tip");
    assert_eq!(first, second);
    assert_eq!(world.aws_calls(), calls, "a cached call reached AWS");
}

#[test]
fn no_login_exits_3() {
    let world = World::start();
    let output = world
        .aws_tip()
        .args(["credential-process", "--profile", "tip"])
        .failure(3);
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("run `aws-tip login --profile tip`"), "{message}");
}

#[test]
fn unknown_profile_exits_2() {
    let world = World::start();
    let output = world
        .aws_tip()
        .args(["credential-process", "--profile", "nope"])
        .failure(2);
    assert!(output.stdout.is_empty());
    assert!(
        stderr(&output).contains("profile `nope` was not found"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn near_expiry_id_token_refreshed() {
    // A 200-second ID token is always within the 5-minute refresh margin.
    let world = World::start_with(OpOptions { id_token_ttl: 200 });
    world.login("tip");
    let before = world.tokens();
    credential_process(&world, "tip");
    let after = world.tokens();
    // Within one second the refreshed ID token may equal the old one byte for byte, because its
    // claims and RS256 signature are then identical. The rotated refresh token proves the refresh.
    assert_ne!(
        before["refresh_token"], after["refresh_token"],
        "the rotated refresh token was not stored"
    );
    assert_eq!(after["subject"], "alice");
}

#[test]
fn rejected_refresh_requires_login() {
    let world = World::start_with(OpOptions { id_token_ttl: 200 });
    world.login("tip");
    let stale = std::fs::read(world.tokens_file()).unwrap();
    credential_process(&world, "tip");
    // Replaying the spent refresh token makes the provider revoke the grant.
    std::fs::write(world.tokens_file(), stale).unwrap();
    for entry in std::fs::read_dir(world.cache_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".aws-") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let output = world
        .aws_tip()
        .args(["credential-process", "--profile", "tip"])
        .failure(3);
    let message = stderr(&output);
    assert!(message.contains("rejected the refresh token"), "{message}");
    assert!(message.contains("aws-tip login --profile tip"), "{message}");
}

#[test]
fn invalid_grant_retried_with_fresh_token() {
    let world = World::start();
    world.login("tip");
    let before = world.tokens();
    world.fail_next("CreateTokenWithIAM", "InvalidGrantException", 1);
    credential_process(&world, "tip");
    assert_eq!(world.aws_call_count("CreateTokenWithIAM"), 2);
    assert_ne!(before["refresh_token"], world.tokens()["refresh_token"]);
}

#[test]
fn parallel_callers_share_one_exchange() {
    let world = World::start();
    world.login("tip");
    let children: Vec<_> = (0..64)
        .map(|_| {
            world
                .aws_tip()
                .args(["credential-process", "--profile", "tip"])
                .command()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let mut keys = std::collections::BTreeSet::new();
    for output in &outputs {
        assert!(output.status.success(), "{}", stderr(output));
        keys.insert(credential_json(output)["AccessKeyId"].as_str().unwrap().to_owned());
    }
    assert_eq!(keys.len(), 1, "callers got different credentials: {keys:?}");
    assert_eq!(world.aws_call_count("CreateTokenWithIAM"), 1);
    assert_eq!(world.aws_call_count("AssumeRole"), 1);
}

#[test]
fn source_profile_signs_exchange() {
    let world = World::start();
    world.login("tip-source");
    credential_process(&world, "tip-source");
    assert_eq!(world.aws_call_count("AssumeRoleWithWebIdentity"), 0);
    assert_eq!(world.aws_call_count("CreateTokenWithIAM"), 1);
    assert_eq!(world.aws_call_count("AssumeRole"), 1);
}

#[test]
fn s3_target_returns_grant_credentials() {
    let world = World::start();
    world.login("tip");
    let identity = credential_process(&world, "tip");
    let grant = credential_process(&world, "tip-s3");
    assert_ne!(identity["AccessKeyId"], grant["AccessKeyId"]);
    assert_eq!(world.aws_call_count("GetDataAccess"), 1);
}

#[test]
fn denied_assume_role_exits_4() {
    let world = World::start();
    world.login("tip");
    world.fail_next("AssumeRole", "AccessDenied", 1);
    let output = world
        .aws_tip()
        .args(["credential-process", "--profile", "tip"])
        .failure(4);
    let message = stderr(&output);
    assert!(message.contains("AssumeRole was rejected: AccessDenied"), "{message}");
    assert!(message.contains("sts:SetContext"), "{message}");
    assert!(output.stdout.is_empty());
}

#[test]
fn unreachable_endpoint_exits_5() {
    let world = World::start();
    world.login("tip");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = world
        .aws_tip()
        .env("AWS_ENDPOINT_URL_STS", format!("http://{closed}"))
        .args(["credential-process", "--profile", "tip"])
        .failure(5);
    assert!(stderr(&output).contains("could not reach"), "{}", stderr(&output));
}

#[test]
fn login_discards_old_credentials() {
    let world = World::start();
    world.login("tip");
    let first = credential_process(&world, "tip");
    world.login("tip");
    let second = credential_process(&world, "tip");
    assert_ne!(first["AccessKeyId"], second["AccessKeyId"]);
    assert_eq!(world.aws_call_count("CreateTokenWithIAM"), 2);
}

#[test]
fn profile_endpoint_url_used() {
    let world = World::start();
    world.write_config(&format!(
        "[profile tip-endpoint]\nregion = us-east-1\nendpoint_url = {aws}\ntip_issuer = {op}\n\
         tip_client_id = {CLIENT_ID}\ntip_redirect_uri = http://127.0.0.1:0/authorize\ntip_idc_region = us-east-2\n\
         tip_application_arn = {APPLICATION_ARN}\ntip_role_arn = {BEARER_ROLE_ARN}\ntip_exchange_role_arn = {EXCHANGE_ROLE_ARN}\n",
        aws = world.aws_url,
        op = world.op_url
    ));
    world.write_credentials(&format!("[tip-endpoint]\ntip_client_secret = {CLIENT_SECRET}\n"));
    world.login("tip");
    let output = world
        .aws_tip()
        .env_remove("AWS_ENDPOINT_URL_STS")
        .env_remove("AWS_ENDPOINT_URL_SSO_OIDC")
        .args(["credential-process", "--profile", "tip-endpoint"])
        .success();
    credential_json(&output);
    assert_eq!(world.aws_call_count("CreateTokenWithIAM"), 1);
}

#[test]
fn non_utf8_profile_file_named() {
    let world = World::start();
    world.login("tip");
    let mut credentials = std::fs::read(world.credentials_path()).unwrap();
    credentials.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(world.credentials_path(), credentials).unwrap();
    std::fs::remove_dir_all(world.cache_dir()).unwrap();
    let output = world
        .aws_tip()
        .args(["credential-process", "--profile", "tip"])
        .failure(2);
    let message = stderr(&output);
    assert!(message.contains("is not valid UTF-8"), "{message}");
    assert!(!message.contains(CLIENT_SECRET), "{message}");
    assert!(!message.contains(SOURCE_SECRET), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn server_error_exits_5() {
    let world = World::start();
    world.login("tip");
    world.fail_next("AssumeRole", "InternalFailure", 3);
    let output = world
        .aws_tip()
        .args(["credential-process", "--profile", "tip"])
        .failure(5);
    assert!(stderr(&output).contains("InternalFailure"), "{}", stderr(&output));
}

#[test]
fn no_sign_in_creates_nothing() {
    let world = World::start();
    world
        .aws_tip()
        .args(["credential-process", "--profile", "tip"])
        .failure(3);
    assert!(
        !world.cache_dir().exists(),
        "credential-process created the cache directory"
    );
}

#[test]
fn source_profile_loop_rejected() {
    let world = World::start();
    let exe = aws_tip_exe();
    world.write_config(&format!(
        "[profile loop]\nregion = us-east-1\ntip_issuer = {op}\ntip_client_id = {CLIENT_ID}\n\
         tip_application_arn = {APPLICATION_ARN}\ntip_role_arn = {BEARER_ROLE_ARN}\ntip_source_profile = loop-source\n\n\
         [profile loop-source]\ncredential_process = {exe} credential-process --profile loop\n",
        op = world.op_url,
        exe = exe.display()
    ));
    world.login("tip");
    let output = world
        .aws_tip()
        .args(["credential-process", "--profile", "loop"])
        .failure(2);
    assert!(stderr(&output).contains("loops"), "{}", stderr(&output));
}
