"""Measures aws-tip against the local stand-ins and prints a Markdown table.

Cases:
  warm      credential-process served from the cache (the common call).
  read      `cat` of the cached credentials file, the floor for a warm call.
  cold      credential-process with the credentials cache removed before each call. This is the
            whole AWS exchange: AssumeRoleWithWebIdentity, CreateTokenWithIAM, AssumeRole.
  parallel  64 credential-process calls started at once on an empty credentials cache. It
            reports the wall time and how many exchanges reached the stand-in.

Run it through scripts/bench, which builds the release binary and the test environment.
Timings are wall-clock medians of repeated runs on the machine it runs on.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "tests" / "standins"
ACCOUNT = "111122223333"
APPLICATION = f"arn:aws:sso::{ACCOUNT}:application/ssoins-7223aaaa11112222/apl-1a2b3c4d5e6f7a8b"
USER_ID = "9a6743f1-0001-4f7e-a1b2-000000000001"


def start_server(command, marker, log):
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(marker + " "):
            return process, line.split(" ", 1)[1].strip()
        if not line and process.poll() is not None:
            break
    process.kill()
    sys.exit(f"bench: {command[0]} did not print {marker}")


GNU_TIME = Path("/usr/bin/time")


def max_rss(command, env):
    """Peak resident set of one run, measured by GNU time.

    A child's own rusage is no use here, because on Linux it includes the memory the child
    shared with this Python process before `exec`.
    """
    if not GNU_TIME.exists():
        return "n/a (needs GNU time)"
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run([str(GNU_TIME), "-f", "%M", "-o", report.name, *command], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return f"{int(report.read().split()[-1]) / 1024:.1f} MiB"


class Samples:
    """Wall times in milliseconds of repeated runs."""

    def __init__(self):
        self.times = []

    def run(self, command, env):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        self.times.append((time.perf_counter() - started) * 1000)

    def row(self, name, rss):
        return (name, f"{statistics.median(self.times):.2f} ms", f"{min(self.times):.2f} ms",
                f"{max(self.times):.2f} ms", rss)


def time_runs(command, env, runs):
    samples = Samples()
    for _ in range(runs):
        samples.run(command, env)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="aws-tip binary to measure")
    parser.add_argument("--runs", type=int, default=200, help="runs of each warm case")
    parser.add_argument("--cold-runs", type=int, default=30, help="runs of the cold case")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aws-tip-bench-"))
    log = open(work / "servers.log", "w")
    servers = []
    try:
        op, op_url = start_server(["node", str(STANDINS / "op" / "op.mjs")], "OP_LISTENING", log)
        servers.append(op)
        (work / "standin.json").write_text(json.dumps({
            "account_id": ACCOUNT, "region": "us-east-1", "idc_region": "us-east-1",
            "trusted_token_issuer": {"issuer": op_url, "audiences": ["aws-tip-test"], "claim": "email"},
            "identity_store_users": {"alice@example.test": USER_ID},
            "application_arn": APPLICATION,
            "exchange_role_arn": f"arn:aws:iam::{ACCOUNT}:role/TipExchange",
            "source_keys": {},
            "identity_bearer_role_arn": f"arn:aws:iam::{ACCOUNT}:role/TipIdentityBearer",
            "access_grants": [], "objects": {},
        }))
        aws, aws_url = start_server(
            [sys.executable, str(STANDINS / "aws_standin.py"), "--config", str(work / "standin.json")],
            "AWS_STANDIN_LISTENING", log)
        servers.append(aws)

        (work / "config").write_text(
            "[profile bench]\nregion = us-east-1\n"
            f"tip_issuer = {op_url}\ntip_client_id = aws-tip-test\n"
            "tip_redirect_uri = http://127.0.0.1:0/authorize\n"
            f"tip_application_arn = {APPLICATION}\n"
            f"tip_exchange_role_arn = arn:aws:iam::{ACCOUNT}:role/TipExchange\n"
            f"tip_role_arn = arn:aws:iam::{ACCOUNT}:role/TipIdentityBearer\n")
        (work / "credentials").write_text("[bench]\ntip_client_secret = aws-tip-test-secret\n")
        env = {
            "PATH": os.environ["PATH"], "HOME": str(work),
            "AWS_CONFIG_FILE": str(work / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "credentials"),
            "AWS_TIP_CACHE_DIR": str(work / "cache"), "AWS_ENDPOINT_URL_STS": aws_url,
            "AWS_ENDPOINT_URL_SSO_OIDC": aws_url, "NO_PROXY": "127.0.0.1,localhost",
            "BROWSER": str(STANDINS / "browser.py"),
        }
        subprocess.run([args.binary, "login", "--profile", "bench"], env=env, check=True,
                       stderr=subprocess.DEVNULL)
        command = [args.binary, "credential-process", "--profile", "bench"]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        cache_file = next((work / "cache").glob("*.aws-*.json"))

        rows = []
        rows.append(time_runs(command, env, args.runs).row("warm: credential-process from the cache",
                                                            max_rss(command, env)))
        read = ["cat", str(cache_file)]
        rows.append(time_runs(read, env, args.runs).row("read: `cat` of the cached credentials file",
                                                         max_rss(read, env)))

        cold = Samples()
        for _ in range(args.cold_runs):
            cache_file.unlink()
            cold.run(command, env)
        cache_file.unlink()
        rows.append(cold.row("cold: credential-process with the whole exchange", max_rss(command, env)))

        def calls():
            with urllib.request.urlopen(f"{aws_url}/_standin/calls") as response:
                return json.load(response).get("CreateTokenWithIAM", 0)

        cache_file.unlink()
        before = calls()
        started = time.perf_counter()
        children = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(64)]
        failed = sum(child.wait() != 0 for child in children)
        wall = (time.perf_counter() - started) * 1000
        exchanges = calls() - before
        rows.append((f"parallel: 64 callers, empty cache ({exchanges} exchange, {failed} failed)",
                     f"{wall:.0f} ms (wall, all 64)", "", "", ""))

        print("| case | median | min | max | max RSS |")
        print("| --- | --- | --- | --- | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print(f"\nBinary: {args.binary} ({os.path.getsize(args.binary) / 1e6:.1f} MB)")
    finally:
        for server in servers:
            server.kill()
            server.wait()
        log.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
