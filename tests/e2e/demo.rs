//! `scripts/demo`, the README's local run, keeps working.

use std::process::Command;

use crate::harness::{aws_tip_exe, repo, test_env_dir};

#[test]
fn demo_prints_session_arn() {
    let output = Command::new(repo().join("scripts/demo"))
        .env("AWS_TIP_BIN", aws_tip_exe())
        .env("AWS_TIP_TEST_ENV", test_env_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        stdout,
        "arn:aws:sts::111122223333:assumed-role/TipIdentityBearer/aws-tip-9a6743f1-0001-4f7e-a1b2-000000000001\n"
    );
    assert!(stderr.contains("id,name,department\n1,alice,Marketing"), "{stderr}");

    // The demo removes its directory and stops the servers it started, which all carry
    // AWS_TIP_DEMO_WORK in their environment.
    let work = stderr
        .lines()
        .find_map(|line| line.strip_prefix("work directory: "))
        .expect("the demo names its work directory");
    assert!(!std::path::Path::new(work).exists(), "{work} was left behind");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(environ) = std::fs::read(entry.path().join("environ")) {
            let marker = format!("AWS_TIP_DEMO_WORK={work}");
            let environ = String::from_utf8_lossy(&environ);
            assert!(
                !environ.split('\0').any(|var| var == marker),
                "process {:?} outlived the demo",
                entry.file_name()
            );
        }
    }
}
