//! The real AWS CLI and boto3 running `aws-tip` as their `credential_process`.

use crate::harness::*;

fn bearer_session_arn() -> String {
    format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/TipIdentityBearer/aws-tip-{USER_ID}")
}

#[test]
fn aws_cli_gets_identity_enhanced_session() {
    let world = World::start();
    world.login("tip");
    let output = world
        .aws_cli()
        .args(["--profile", "tip", "sts", "get-caller-identity", "--output", "json"])
        .args(["--endpoint-url", &world.aws_url])
        .success();
    let identity: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(identity["Arn"], bearer_session_arn());
    assert_eq!(identity["Account"], ACCOUNT_ID);
}

#[test]
fn boto3_gets_identity_enhanced_session() {
    let world = World::start();
    world.login("tip");
    let script = "import boto3, json, sys\n\
                  session = boto3.Session(profile_name='tip')\n\
                  identity = session.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()\n\
                  print(json.dumps({'Arn': identity['Arn'], 'method': session.get_credentials().method}))\n";
    let output = world.python().args(["-c", script, &world.aws_url]).success();
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["Arn"], bearer_session_arn());
    assert_eq!(result["method"], "custom-process");
}

#[test]
fn aws_cli_reads_s3_object() {
    let world = World::start();
    world.login("tip");
    let object = format!("s3://{BUCKET}/{OBJECT_KEY}");
    let output = world
        .aws_cli()
        .args([
            "--profile",
            "tip-s3",
            "s3",
            "cp",
            &object,
            "-",
            "--endpoint-url",
            &world.aws_url,
        ])
        .success();
    assert_eq!(stdout(&output), OBJECT_BODY);

    // The identity-enhanced session itself may not read S3 objects.
    world
        .aws_cli()
        .args([
            "--profile",
            "tip",
            "s3",
            "cp",
            &object,
            "-",
            "--endpoint-url",
            &world.aws_url,
        ])
        .failure(1);
}

#[test]
fn aws_cli_shows_login_hint() {
    let world = World::start();
    let output = world
        .aws_cli()
        .args([
            "--profile",
            "tip",
            "sts",
            "get-caller-identity",
            "--endpoint-url",
            &world.aws_url,
        ])
        .failure(255);
    assert!(
        stderr(&output).contains("aws-tip login --profile tip"),
        "{}",
        stderr(&output)
    );
}
