#!/usr/bin/env bash
# End-to-end check of the test stand-ins, without aws-tip. It starts the
# OpenID provider (op/op.mjs) and the AWS stand-in (aws_standin.py) and signs
# in through browser.py with a small PKCE client. Then it drives the whole
# exchange, failure cases included, with the real AWS CLI from the test venv.
#
# Run scripts/setup-test-env first. Prints one line per check and ends with
# "N passed, N failed", and exits non-zero when a check failed.
#
# Several checks pass a single-quoted script to `bash -c` on purpose:
# shellcheck disable=SC2016
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
standins=$repo/tests/standins
venv=${AWS_TIP_TEST_ENV:-$repo/target/test-env}/venv
python=$venv/bin/python
aws_cli=$venv/bin/aws
if [[ ! -x $aws_cli || ! -d $standins/op/node_modules/oidc-provider ]]; then
    echo "selfcheck: test environment not found in $venv: run scripts/setup-test-env first" >&2
    exit 2
fi

work=$(mktemp -d)
chmod 700 "$work"
server_pids=()

stop_servers() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    server_pids=()
}
cleanup() {
    stop_servers
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAILED: $1"; }

# check NAME COMMAND...: pass when COMMAND exits 0.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# jget FILE PATH: print the value at a dotted PATH of a JSON file
# (list indexes are numbers); fails when the path is missing.
jget() {
    "$python" - "$1" "$2" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for part in sys.argv[2].split("."):
    if isinstance(value, list):
        value = value[int(part)]
    elif isinstance(value, dict) and part in value:
        value = value[part]
    else:
        sys.exit(1)
print(value if isinstance(value, str) else json.dumps(value))
PY
}

# equals EXPECTED FILE PATH
equals() {
    local actual
    actual=$(jget "$2" "$3") || return 1
    [[ $actual == "$1" ]] || { echo "  $3: expected '$1', got '$actual'" >&2; return 1; }
}

# present FILE PATH: succeed when the path exists. Prints nothing, because
# the value may be a token.
present() { jget "$1" "$2" >/dev/null; }

# The checks below run some of these in `bash -c`.
export python
export -f jget equals present

# wait_for_line FILE PREFIX: wait up to 20 s for a server's listening line.
wait_for_line() {
    local _
    for _ in $(seq 200); do
        if grep -q "^$2 " "$1" 2>/dev/null; then
            grep "^$2 " "$1" | head -n1 | cut -d' ' -f2
            return 0
        fi
        sleep 0.1
    done
    echo "selfcheck: no '$2' line in $1 after 20 s" >&2
    return 1
}

# ---------------------------------------------------------------------------
# The PKCE client that plays the part of `aws-tip login`.
# ---------------------------------------------------------------------------
cat >"$work/oidc_client.py" <<'PY'
"""Minimal OAuth client: authorize through BROWSER, exchange the code, refresh.

login ISSUER CLIENT_ID SECRET MODE START LOGIN SCOPE [no-pkce] [basic]
refresh ISSUER CLIENT_ID SECRET REFRESH_TOKEN
Prints one JSON document on stdout.
"""
import base64, hashlib, http.server, json, os, secrets, subprocess, sys, threading
import urllib.error, urllib.parse, urllib.request

BROWSER = os.environ["SELFCHECK_BROWSER"]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def token_request(issuer, form, authorization=None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(f"{issuer}/token", urllib.parse.urlencode(form).encode(), headers, method="POST")
    try:
        with opener.open(request, timeout=10) as response:
            return {"status": response.status, "body": json.load(response)}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": json.load(error)}


class Listener(http.server.BaseHTTPRequestHandler):
    """Loopback redirect receiver: /login redirects to the authorization URL."""

    authorization_url = None
    callback = None
    received = threading.Event()

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/login":
            self.send_response(302)
            self.send_header("Location", Listener.authorization_url)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        Listener.callback = dict(urllib.parse.parse_qsl(query))
        body = b"signed in; you can close this window\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        Listener.received.set()

    def log_message(self, *args):
        pass


def login(issuer, client_id, secret, mode, start, login_name, scope, *flags):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    redirect_uri = f"http://127.0.0.1:{port}/authorize"
    verifier = b64url(secrets.token_bytes(32))
    state, nonce = b64url(secrets.token_bytes(16)), b64url(secrets.token_bytes(16))
    params = {
        "client_id": client_id, "response_type": "code", "scope": scope,
        "redirect_uri": redirect_uri, "state": state, "nonce": nonce,
    }
    if "no-pkce" not in flags:
        params["code_challenge"] = b64url(hashlib.sha256(verifier.encode()).digest())
        params["code_challenge_method"] = "S256"
    Listener.authorization_url = f"{issuer}/auth?{urllib.parse.urlencode(params)}"
    start_url = Listener.authorization_url if start == "auth" else f"http://127.0.0.1:{port}/login"

    env = dict(os.environ, BROWSER_MODE=mode, BROWSER_LOGIN=login_name)
    browser = subprocess.run([sys.executable, BROWSER, start_url], env=env, capture_output=True, text=True, timeout=60)
    Listener.received.wait(timeout=5 if mode != "none" else 1)
    server.shutdown()

    callback = Listener.callback or {}
    result = {
        "browser_rc": browser.returncode,
        "browser_stdout": browser.stdout,
        "browser_stderr": browser.stderr,
        "callback_received": Listener.callback is not None,
        "callback": {key: value for key, value in callback.items() if key != "code"},
        "has_code": "code" in callback,
        "state_matches": callback.get("state") == state,
    }
    if "code" in callback:
        form = {"grant_type": "authorization_code", "code": callback["code"],
                "redirect_uri": redirect_uri, "code_verifier": verifier, "client_id": client_id}
        authorization = None
        if "basic" in flags:
            authorization = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        elif secret:
            form["client_secret"] = secret
        result["token"] = token_request(issuer, form, authorization)
        id_token = result["token"]["body"].get("id_token")
        if id_token:
            claims = jwt_claims(id_token)
            result["id_claims"] = claims
            result["nonce_matches"] = claims.get("nonce") == nonce
    return result


def refresh(issuer, client_id, secret, refresh_token):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    if secret:
        form["client_secret"] = secret
    result = {"token": token_request(issuer, form)}
    id_token = result["token"]["body"].get("id_token")
    if id_token:
        result["id_claims"] = jwt_claims(id_token)
    return result


command, *arguments = sys.argv[1:]
print(json.dumps({"login": login, "refresh": refresh}[command](*arguments)))
PY

oidc_client() { SELFCHECK_BROWSER=$standins/browser.py "$python" "$work/oidc_client.py" "$@"; }

# ---------------------------------------------------------------------------
# Start the servers.
# ---------------------------------------------------------------------------
(cd "$standins/op" && exec node op.mjs) >"$work/op.stdout" 2>"$work/op.stderr" &
server_pids+=($!)
op_pid=$!
issuer=$(wait_for_line "$work/op.stdout" OP_LISTENING)
echo "OpenID provider: $issuer"

account=111122223333
exchange_role=arn:aws:iam::$account:role/TipExchange
bearer_role=arn:aws:iam::$account:role/TipIdentityBearer
application=arn:aws:sso::$account:application/ssoins-7223aaaa11112222/apl-1a2b3c4d5e6f7a8b
alice_id=9a6743f1-0001-4f7e-a1b2-000000000001
source_key=AKIASOURCEEXAMPLE01
source_secret=selfcheck-source-secret-0123456789abcdefgh
cat >"$work/standin.json" <<JSON
{
  "account_id": "$account",
  "region": "us-east-1",
  "idc_region": "us-east-2",
  "trusted_token_issuer": {"issuer": "$issuer", "audiences": ["aws-tip-test"], "claim": "email"},
  "iam_oidc_provider": {"issuer": "$issuer", "audiences": ["aws-tip-test", "aws-tip-public"]},
  "identity_store_users": {"alice@example.test": "$alice_id"},
  "application_arn": "$application",
  "exchange_role_arn": "$exchange_role",
  "source_keys": {"$source_key": {"secret": "$source_secret", "arn": "arn:aws:iam::$account:user/tip-operator"}},
  "identity_bearer_role_arn": "$bearer_role",
  "access_grants": [{"grantee": "$alice_id", "target": "s3://shopfast-data/users*", "permission": "READ"}],
  "objects": {"shopfast-data/users/user_list": "id,name\n1,alice\n"}
}
JSON
"$python" "$standins/aws_standin.py" --config "$work/standin.json" >"$work/standin.stdout" 2>"$work/standin.stderr" &
server_pids+=($!)
standin_pid=$!
standin=$(wait_for_line "$work/standin.stdout" AWS_STANDIN_LISTENING)
echo "AWS stand-in: $standin"

# ---------------------------------------------------------------------------
# OpenID provider and browser.py
# ---------------------------------------------------------------------------
scope="openid email offline_access"
oidc_client login "$issuer" aws-tip-test aws-tip-test-secret normal auth alice "$scope" >"$work/login.json"
check "browser.py exits 0, stdout empty" \
    bash -c '[[ $(jget "$1" browser_rc) == 0 && $(jget "$1" browser_stdout) == "" ]]' _ "$work/login.json"
check "loopback redirect carries the sent state" equals true "$work/login.json" state_matches
check "loopback redirect carries the issuer (iss)" equals "$issuer" "$work/login.json" callback.iss
check "code exchange with client_secret_post" equals 200 "$work/login.json" token.status
check "refresh token without prompt=consent" present "$work/login.json" token.body.refresh_token
check "ID token has the email claim" equals alice@example.test "$work/login.json" id_claims.email
check "ID token has email_verified" equals true "$work/login.json" id_claims.email_verified
check "ID token sub is the login name" equals alice "$work/login.json" id_claims.sub
check "ID token aud is the client ID" equals aws-tip-test "$work/login.json" id_claims.aud
check "ID token nonce matches" equals true "$work/login.json" nonce_matches
check "browser.py logs no code or token" \
    bash -c '! grep -Eq "code=|state=|eyJ" <<<"$(jget "$1" browser_stderr)"' _ "$work/login.json"

refresh_token_1=$(jget "$work/login.json" token.body.refresh_token)
oidc_client refresh "$issuer" aws-tip-test aws-tip-test-secret "$refresh_token_1" >"$work/refresh.json"
check "refresh succeeds" equals 200 "$work/refresh.json" token.status
check "refresh returns a new ID token" equals alice@example.test "$work/refresh.json" id_claims.email
refresh_token_2=$(jget "$work/refresh.json" token.body.refresh_token)
check "refresh rotates the refresh token" test "$refresh_token_1" != "$refresh_token_2"
id_token=$(jget "$work/refresh.json" token.body.id_token)

oidc_client refresh "$issuer" aws-tip-test aws-tip-test-secret "$refresh_token_1" >"$work/replay.json"
check "rotated refresh token reuse is invalid_grant" equals invalid_grant "$work/replay.json" token.body.error
oidc_client refresh "$issuer" aws-tip-test aws-tip-test-secret "$refresh_token_2" >"$work/revoked.json"
check "replay revokes the newest refresh token" equals invalid_grant "$work/revoked.json" token.body.error

oidc_client login "$issuer" aws-tip-test aws-tip-test-secret normal login bob "$scope" >"$work/login-bob.json"
check "browser.py starts at the loopback /login URL" equals 200 "$work/login-bob.json" token.status
check "BROWSER_LOGIN sets the user" equals bob@example.test "$work/login-bob.json" id_claims.email
bob_id_token=$(jget "$work/login-bob.json" token.body.id_token)

oidc_client login "$issuer" aws-tip-test aws-tip-test-secret normal auth alice "$scope" basic >"$work/basic.json"
check "Authorization header gets HTTP 401" equals 401 "$work/basic.json" token.status
check "Authorization header gets invalid_client" equals invalid_client "$work/basic.json" token.body.error

oidc_client login "$issuer" aws-tip-public "" normal auth alice "$scope" >"$work/public.json"
check "public client signs in without a secret" equals 200 "$work/public.json" token.status
check "public client ID token aud" equals aws-tip-public "$work/public.json" id_claims.aud
public_id_token=$(jget "$work/public.json" token.body.id_token)

oidc_client login "$issuer" aws-tip-test aws-tip-test-secret normal auth alice "openid email" >"$work/online.json"
check "no refresh token without offline_access" \
    bash -c '[[ $(jget "$1" token.status) == 200 ]] && ! present "$1" token.body.refresh_token' _ "$work/online.json"

oidc_client login "$issuer" aws-tip-test aws-tip-test-secret normal auth alice "$scope" no-pkce >"$work/no-pkce.json"
check "authorization request without PKCE is rejected" equals invalid_request "$work/no-pkce.json" callback.error

oidc_client login "$issuer" aws-tip-test aws-tip-test-secret deny auth alice "$scope" >"$work/deny.json"
check "BROWSER_MODE=deny returns access_denied" equals access_denied "$work/deny.json" callback.error
check "BROWSER_MODE=deny exits 0" equals 0 "$work/deny.json" browser_rc

oidc_client login "$issuer" aws-tip-test aws-tip-test-secret wrong-state auth alice "$scope" >"$work/wrong-state.json"
check "BROWSER_MODE=wrong-state changes the state" \
    bash -c '[[ $(jget "$1" has_code) == true && $(jget "$1" state_matches) == false ]]' _ "$work/wrong-state.json"

oidc_client login "$issuer" aws-tip-test aws-tip-test-secret none auth alice "$scope" >"$work/none.json"
check "BROWSER_MODE=none sends nothing and exits 0" \
    bash -c '[[ $(jget "$1" browser_rc) == 0 && $(jget "$1" callback_received) == false ]]' _ "$work/none.json"

check "OP logs each token request with its grant type" \
    grep -q "token request grant_type=refresh_token authorization_header=absent status=200" "$work/op.stderr"
check "OP logs the rejected Authorization header" \
    grep -q "authorization_header=present status=401" "$work/op.stderr"

# ---------------------------------------------------------------------------
# AWS stand-in, driven by the AWS CLI
# ---------------------------------------------------------------------------
: >"$work/aws-config"
: >"$work/aws-credentials"
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_SECURITY_TOKEN
unset AWS_REGION AWS_ENDPOINT_URL AWS_ENDPOINT_URL_STS AWS_ENDPOINT_URL_SSO_OIDC AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_S3_CONTROL
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy NO_PROXY no_proxy
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-credentials
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1

# aws_as CREDENTIALS_FILE OUTPUT_FILE ARGS...: run the CLI with the keys in a
# JSON file holding AccessKeyId, SecretAccessKey and, optionally, SessionToken.
aws_as() {
    local credentials=$1 output=$2
    shift 2
    local token
    local -a keys=(
        "AWS_ACCESS_KEY_ID=$(jget "$credentials" AccessKeyId)"
        "AWS_SECRET_ACCESS_KEY=$(jget "$credentials" SecretAccessKey)"
    )
    if token=$(jget "$credentials" SessionToken 2>/dev/null); then
        keys+=("AWS_SESSION_TOKEN=$token")
    fi
    env "${keys[@]}" "$aws_cli" "$@" >"$output" 2>"$output.err"
}

# expect_error CODE OUTPUT_FILE: the last CLI call failed with this error code.
expect_error() {
    grep -q "An error occurred ($1)" "$2.err" || { echo "  expected error $1, got: $(cat "$2.err")" >&2; return 1; }
}

printf '{"AccessKeyId": "%s", "SecretAccessKey": "%s"}\n' "$source_key" "$source_secret" >"$work/source.json"

"$aws_cli" sts assume-role-with-web-identity --endpoint-url "$standin" \
    --role-arn "$exchange_role" --role-session-name tip-exchange --web-identity-token "$id_token" \
    >"$work/web-identity.json" 2>"$work/web-identity.json.err" || true
check "AssumeRoleWithWebIdentity exchange role session" \
    equals "arn:aws:sts::$account:assumed-role/TipExchange/tip-exchange" "$work/web-identity.json" AssumedRoleUser.Arn
check "AssumeRoleWithWebIdentity returns the token subject" equals alice "$work/web-identity.json" SubjectFromWebIdentityToken
"$python" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["Credentials"]))' "$work/web-identity.json" >"$work/exchange.json"

aws_as "$work/exchange.json" "$work/token.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$id_token" || true
check "CreateTokenWithIAM returns a Bearer token" equals Bearer "$work/token.json" tokenType
check "CreateTokenWithIAM returns the issued token type" \
    equals urn:ietf:params:oauth:token-type:access_token "$work/token.json" issuedTokenType
context=$(jget "$work/token.json" awsAdditionalDetails.identityContext || echo missing)
check "identityContext equals idToken claim" "$python" - "$work/token.json" <<'PY'
import base64, json, sys
response = json.load(open(sys.argv[1]))
payload = response["idToken"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
sys.exit(claims["sts:identity_context"] != response["awsAdditionalDetails"]["identityContext"])
PY

provided="ProviderArn=arn:aws:iam::aws:contextProvider/IdentityCenter,ContextAssertion=$context"
aws_as "$work/exchange.json" "$work/bearer.json" sts assume-role --endpoint-url "$standin" \
    --role-arn "$bearer_role" --role-session-name tip-alice --provided-contexts "$provided" || true
check "AssumeRole with ProvidedContexts" \
    equals "arn:aws:sts::$account:assumed-role/TipIdentityBearer/tip-alice" "$work/bearer.json" AssumedRoleUser.Arn
"$python" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["Credentials"]))' "$work/bearer.json" >"$work/identity.json"

aws_as "$work/identity.json" "$work/whoami.json" sts get-caller-identity --endpoint-url "$standin" || true
check "GetCallerIdentity of the identity session" \
    equals "arn:aws:sts::$account:assumed-role/TipIdentityBearer/tip-alice" "$work/whoami.json" Arn

HTTP_PROXY=$standin NO_PROXY=127.0.0.1,localhost aws_as "$work/identity.json" "$work/data-access.json" \
    s3control get-data-access --endpoint-url http://s3-control.invalid \
    --account-id "$account" --target 's3://shopfast-data/users*' --permission READ || true
check "GetDataAccess through HTTP_PROXY" \
    equals 's3://shopfast-data/users*' "$work/data-access.json" MatchedGrantTarget
check "GetDataAccess names the directory user" equals "$alice_id" "$work/data-access.json" Grantee.GranteeIdentifier
check "GetDataAccess grantee type" equals DIRECTORY_USER "$work/data-access.json" Grantee.GranteeType
"$python" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["Credentials"]))' "$work/data-access.json" >"$work/vended.json"

aws_as "$work/vended.json" "$work/object.txt" s3 cp s3://shopfast-data/users/user_list - --endpoint-url "$standin" || true
printf 'id,name\n1,alice\n' >"$work/object-expected.txt"
check "s3 cp with vended credentials" cmp -s "$work/object-expected.txt" "$work/object.txt"
aws_as "$work/vended.json" "$work/whoami-vended.json" sts get-caller-identity --endpoint-url "$standin" || true
check "GetCallerIdentity of vended credentials" \
    bash -c '[[ $(jget "$1" Arn) == arn:aws:sts::*:assumed-role/TipAccessGrantsLocation/access-grants-* ]]' _ "$work/whoami-vended.json"

# Source keys as the exchange principal.
aws_as "$work/source.json" "$work/source-exchange.json" sts assume-role --endpoint-url "$standin" \
    --role-arn "$exchange_role" --role-session-name tip-source || true
check "AssumeRole exchange role with source key" \
    equals "arn:aws:sts::$account:assumed-role/TipExchange/tip-source" "$work/source-exchange.json" AssumedRoleUser.Arn
aws_as "$work/source.json" "$work/source-token.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$id_token" || true
check "CreateTokenWithIAM signed with a source key" equals Bearer "$work/source-token.json" tokenType
aws_as "$work/source.json" "$work/source-whoami.json" sts get-caller-identity --endpoint-url "$standin" || true
check "GetCallerIdentity of a source key" \
    equals "arn:aws:iam::$account:user/tip-operator" "$work/source-whoami.json" Arn

# Failure cases.
printf '{"AccessKeyId": "%s", "SecretAccessKey": "wrong-secret", "SessionToken": "%s"}\n' \
    "$(jget "$work/identity.json" AccessKeyId)" "$(jget "$work/identity.json" SessionToken)" >"$work/wrong-secret.json"
aws_as "$work/wrong-secret.json" "$work/n-signature.json" sts get-caller-identity --endpoint-url "$standin" || true
check "wrong secret fails with SignatureDoesNotMatch" expect_error SignatureDoesNotMatch "$work/n-signature.json"

printf '{"AccessKeyId": "ASIANOTVENDED000001", "SecretAccessKey": "x"}\n' >"$work/unknown-key.json"
aws_as "$work/unknown-key.json" "$work/n-unknown.json" sts get-caller-identity --endpoint-url "$standin" || true
check "unknown access key fails with InvalidClientTokenId" expect_error InvalidClientTokenId "$work/n-unknown.json"

printf '{"AccessKeyId": "%s", "SecretAccessKey": "%s", "SessionToken": "not-the-session-token"}\n' \
    "$(jget "$work/identity.json" AccessKeyId)" "$(jget "$work/identity.json" SecretAccessKey)" >"$work/wrong-token.json"
aws_as "$work/wrong-token.json" "$work/n-token.json" sts get-caller-identity --endpoint-url "$standin" || true
check "wrong session token fails with InvalidClientTokenId" expect_error InvalidClientTokenId "$work/n-token.json"

aws_as "$work/exchange.json" "$work/n-no-context.json" sts assume-role --endpoint-url "$standin" \
    --role-arn "$bearer_role" --role-session-name tip-alice || true
check "bearer role without ProvidedContexts: AccessDenied" \
    expect_error AccessDenied "$work/n-no-context.json"

aws_as "$work/exchange.json" "$work/n-bad-context.json" sts assume-role --endpoint-url "$standin" \
    --role-arn "$bearer_role" --role-session-name tip-alice \
    --provided-contexts "ProviderArn=arn:aws:iam::aws:contextProvider/IdentityCenter,ContextAssertion=not-issued-here" || true
check "unknown context: InvalidContextAssertion" \
    expect_error InvalidContextAssertion "$work/n-bad-context.json"

aws_as "$work/exchange.json" "$work/n-duration.json" sts assume-role --endpoint-url "$standin" \
    --role-arn "$bearer_role" --role-session-name tip-alice --duration-seconds 7200 --provided-contexts "$provided" || true
check "role chaining over 1 hour: ValidationError" expect_error ValidationError "$work/n-duration.json"
check "role chaining error names the one hour limit" grep -q "1 hour session limit" "$work/n-duration.json.err"

aws_as "$work/exchange.json" "$work/n-session-name.json" sts assume-role --endpoint-url "$standin" \
    --role-arn "$bearer_role" --role-session-name 'bad name' --provided-contexts "$provided" || true
check "RoleSessionName pattern: ValidationError" \
    expect_error ValidationError "$work/n-session-name.json"

aws_as "$work/exchange.json" "$work/n-exchange-chain.json" sts assume-role --endpoint-url "$standin" \
    --role-arn "$exchange_role" --role-session-name again || true
check "exchange role from role session: AccessDenied" \
    expect_error AccessDenied "$work/n-exchange-chain.json"

"$aws_cli" sts assume-role-with-web-identity --endpoint-url "$standin" --role-arn "$bearer_role" \
    --role-session-name x1 --web-identity-token "$id_token" >"$work/n-web-role.json" 2>"$work/n-web-role.json.err" || true
check "web identity on another role: AccessDenied" expect_error AccessDenied "$work/n-web-role.json"

forged_id_token=$("$python" -c '
import sys
header, payload, signature = sys.argv[1].split(".")
swapped = "A" if signature[10] != "A" else "B"
print(".".join([header, payload, signature[:10] + swapped + signature[11:]]))' "$id_token")
"$aws_cli" sts assume-role-with-web-identity --endpoint-url "$standin" --role-arn "$exchange_role" \
    --role-session-name x1 --web-identity-token "$forged_id_token" >"$work/n-web-sig.json" 2>"$work/n-web-sig.json.err" || true
check "forged web identity token: InvalidIdentityToken" \
    expect_error InvalidIdentityToken "$work/n-web-sig.json"

"$aws_cli" sts assume-role-with-web-identity --endpoint-url "$standin" --role-arn "$exchange_role" \
    --role-session-name tip-public --web-identity-token "$public_id_token" >"$work/public-exchange.json" 2>"$work/public-exchange.json.err" || true
check "web identity with public client token" \
    equals "arn:aws:sts::$account:assumed-role/TipExchange/tip-public" "$work/public-exchange.json" AssumedRoleUser.Arn

aws_as "$work/exchange.json" "$work/n-audience.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$public_id_token" || true
check "assertion audience not trusted: InvalidGrantException" \
    expect_error InvalidGrantException "$work/n-audience.json"

aws_as "$work/exchange.json" "$work/n-user.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$bob_id_token" || true
check "email without user: InvalidGrantException" \
    expect_error InvalidGrantException "$work/n-user.json"

aws_as "$work/exchange.json" "$work/n-region.json" sso-oidc create-token-with-iam --region us-east-1 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$id_token" || true
check "wrong region: InvalidRequestRegionException" \
    expect_error InvalidRequestRegionException "$work/n-region.json"

aws_as "$work/exchange.json" "$work/n-client.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "${application%?}0" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$id_token" || true
check "other application: InvalidClientException" \
    expect_error InvalidClientException "$work/n-client.json"

aws_as "$work/identity.json" "$work/n-idc-caller.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$id_token" || true
check "token exchange by identity session: AccessDeniedException" \
    expect_error AccessDeniedException "$work/n-idc-caller.json"

curl -sf -X POST "$standin/_standin/fail" \
    -d '{"operation": "CreateTokenWithIAM", "error": "InvalidGrantException", "count": 1}' >"$work/fail.json"
check "POST /_standin/fail accepts a modelled error" equals 1 "$work/fail.json" remaining
aws_as "$work/exchange.json" "$work/n-injected.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$id_token" || true
check "the injected failure is returned once" expect_error InvalidGrantException "$work/n-injected.json"
aws_as "$work/exchange.json" "$work/after-injected.json" sso-oidc create-token-with-iam --region us-east-2 --endpoint-url "$standin" \
    --client-id "$application" --grant-type urn:ietf:params:oauth:grant-type:jwt-bearer --assertion "$id_token" || true
check "the call after the injected failure succeeds" equals Bearer "$work/after-injected.json" tokenType
check "/_standin/fail rejects unknown errors" \
    bash -c '[[ $(curl -s -o /dev/null -w "%{http_code}" -X POST "$1/_standin/fail" -d "{\"operation\": \"AssumeRole\", \"error\": \"NoSuchError\"}") == 400 ]]' _ "$standin"

aws_as "$work/identity.json" "$work/n-s3-identity.txt" s3 cp s3://shopfast-data/users/user_list - --endpoint-url "$standin" || true
check "s3 cp with identity session denied" grep -Eq "403|AccessDenied|Forbidden" "$work/n-s3-identity.txt.err"

HTTP_PROXY=$standin NO_PROXY=127.0.0.1,localhost aws_as "$work/identity.json" "$work/n-readwrite.json" \
    s3control get-data-access --endpoint-url http://s3-control.invalid \
    --account-id "$account" --target 's3://shopfast-data/users*' --permission READWRITE || true
check "GetDataAccess READWRITE: AccessDenied" expect_error AccessDenied "$work/n-readwrite.json"
check "GetDataAccess denial names permission, target" \
    grep -q "You do not have READWRITE permissions to the requested S3 Prefix: s3://shopfast-data/users\*" "$work/n-readwrite.json.err"

HTTP_PROXY=$standin NO_PROXY=127.0.0.1,localhost aws_as "$work/identity.json" "$work/n-prefix.json" \
    s3control get-data-access --endpoint-url http://s3-control.invalid \
    --account-id "$account" --target 's3://shopfast-data/products*' --permission READ || true
check "GetDataAccess other prefix: AccessDenied" expect_error AccessDenied "$work/n-prefix.json"

HTTP_PROXY=$standin NO_PROXY=127.0.0.1,localhost aws_as "$work/exchange.json" "$work/n-gda-exchange.json" \
    s3control get-data-access --endpoint-url http://s3-control.invalid \
    --account-id "$account" --target 's3://shopfast-data/users*' --permission READ || true
check "GetDataAccess by exchange session: AccessDenied" expect_error AccessDenied "$work/n-gda-exchange.json"

# botocore checks some constraints before sending. Turn that off, so that the
# stand-in's own model validation responds.
printf '[default]\nparameter_validation = false\n' >"$work/aws-config-unvalidated"
AWS_CONFIG_FILE=$work/aws-config-unvalidated HTTP_PROXY=$standin NO_PROXY=127.0.0.1,localhost \
    aws_as "$work/identity.json" "$work/n-duration-gda.json" \
    s3control get-data-access --endpoint-url http://s3-control.invalid --duration-seconds 60 \
    --account-id "$account" --target 's3://shopfast-data/users*' --permission READ || true
check "GetDataAccess duration 60: InvalidRequestException" \
    expect_error InvalidRequestException "$work/n-duration-gda.json"
check "GetDataAccess message names the minimum" \
    grep -q "at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900" "$work/n-duration-gda.json.err"
AWS_CONFIG_FILE=$work/aws-config-unvalidated HTTP_PROXY=$standin NO_PROXY=127.0.0.1,localhost \
    aws_as "$work/identity.json" "$work/n-permission.json" \
    s3control get-data-access --endpoint-url http://s3-control.invalid \
    --account-id "$account" --target 's3://shopfast-data/users*' --permission READ_ALL || true
check "GetDataAccess permission enum validated" \
    grep -q "Member must satisfy enum value set: \[READ, WRITE, READWRITE\]" "$work/n-permission.json.err"
AWS_CONFIG_FILE=$work/aws-config-unvalidated aws_as "$work/exchange.json" "$work/n-contexts-empty.json" \
    sts assume-role --endpoint-url "$standin" --role-arn "$bearer_role" --role-session-name x \
    --provided-contexts "$provided" || true
check "RoleSessionName minimum length validated" \
    grep -q "Member must have length greater than or equal to 2" "$work/n-contexts-empty.json.err"

aws_as "$work/vended.json" "$work/n-other-key.txt" s3 cp s3://shopfast-data/products/list - --endpoint-url "$standin" || true
check "vended credentials limited to prefix" grep -Eq "403|AccessDenied|Forbidden" "$work/n-other-key.txt.err"

# ---------------------------------------------------------------------------
# Control routes, logs and shutdown
# ---------------------------------------------------------------------------
curl -sf "$standin/_standin/calls" >"$work/calls.json"
check "/_standin/calls counts CreateTokenWithIAM" bash -c '(( $(jget "$1" CreateTokenWithIAM) >= 5 ))' _ "$work/calls.json"
check "/_standin/calls counts GetDataAccess" bash -c '(( $(jget "$1" GetDataAccess) >= 5 ))' _ "$work/calls.json"
check "/_standin/calls counts GetObject" bash -c '(( $(jget "$1" GetObject) >= 1 ))' _ "$work/calls.json"
curl -sf "$standin/_standin/log" >"$work/log.json"
check "/_standin/log record fields" "$python" - "$work/log.json" <<'PY'
import json, sys
records = json.load(open(sys.argv[1]))
wanted = {"operation": "AssumeRole", "role_session_name": "tip-alice", "error": None}
sys.exit(not any(all(r.get(k) == v for k, v in wanted.items()) and r["caller"].endswith("/tip-exchange") for r in records))
PY

# Every secret the run handled must be absent from logs and control responses.
"$python" - "$work" "$source_secret" "$id_token" "$public_id_token" "$context" >"$work/secrets.txt" <<'PY'
import json, sys
work, *secrets = sys.argv[1:]
secrets.append("aws-tip-test-secret")
for name in ("exchange", "identity", "vended"):
    credentials = json.load(open(f"{work}/{name}.json"))
    secrets += [credentials["SecretAccessKey"], credentials["SessionToken"]]
token = json.load(open(f"{work}/token.json"))
secrets += [token["accessToken"], token["idToken"]]
print("\n".join(secret for secret in secrets if secret))
PY
kill "$op_pid" "$standin_pid"
op_status=0
wait "$op_pid" || op_status=$?
standin_status=0
wait "$standin_pid" || standin_status=$?
server_pids=()
check "OP exits with status 0 on SIGTERM" test "$op_status" = 0
check "AWS stand-in exits with status 0 on SIGTERM" test "$standin_status" = 0
check "no secret in logs or control responses" \
    bash -c '! grep -F -f "$1/secrets.txt" "$1/op.stderr" "$1/standin.stderr" "$1/calls.json" "$1/log.json"' _ "$work"
check "OP stdout is only the listening line" bash -c '[[ $(wc -l <"$1") == 1 ]]' _ "$work/op.stdout"
check "stand-in stdout is only the listening line" bash -c '[[ $(wc -l <"$1") == 1 ]]' _ "$work/standin.stdout"

if (( failed > 0 )); then
    echo "--- OP stderr"; cat "$work/op.stderr"
    echo "--- AWS stand-in stderr"; cat "$work/standin.stderr"
fi
echo "$passed passed, $failed failed"
(( failed == 0 ))
