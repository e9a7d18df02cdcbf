// Local OpenID provider for aws-tip tests, configured like a JumpCloud OIDC
// application: client_secret_post, PKCE, `email` claim in the ID token, and
// refresh tokens without a consent prompt.
//
// stdout carries exactly one line, `OP_LISTENING http://127.0.0.1:PORT`.
// Everything else (oidc-provider notices included) goes to stderr.
//
// Environment:
//   OP_PORT               TCP port on 127.0.0.1 (default 0: a free port)
//   OP_ID_TOKEN_TTL       ID token lifetime in seconds (default 3600)
//   OP_ACCESS_TOKEN_TTL   access token lifetime in seconds (default 3600)
//   OP_REFRESH_TOKEN_TTL  refresh token lifetime in seconds (default 86400)

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';

// oidc-provider prints its notices with console.info, which writes to stdout.
// Tests read stdout for the OP_LISTENING line only, so send them to stderr.
console.info = console.error;
console.log = console.error;

const { default: Provider } = await import('oidc-provider');

const TEST_CLIENT_ID = 'aws-tip-test';
const TEST_CLIENT_SECRET = 'aws-tip-test-secret';
const PUBLIC_CLIENT_ID = 'aws-tip-public';

// Ports are ignored when a native client's loopback redirect URI is matched
// (RFC 8252 section 7.3). oidc-provider 9.13 treats 127.0.0.1, [::1] and
// localhost as loopback hosts.
const LOOPBACK_REDIRECT_URIS = [
  'http://127.0.0.1/authorize',
  'http://[::1]/authorize',
  'http://localhost/authorize',
];

function readSeconds(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  if (!/^[1-9][0-9]*$/.test(raw)) {
    console.error(`op: invalid ${name}=${JSON.stringify(raw)}: expected a positive whole number of seconds`);
    process.exit(2);
  }
  return Number(raw);
}

function readPort() {
  const raw = process.env.OP_PORT ?? '0';
  const port = Number(raw);
  if (!/^[0-9]+$/.test(raw) || port > 65535) {
    console.error(`op: invalid OP_PORT=${JSON.stringify(raw)}: expected a port number from 0 to 65535`);
    process.exit(2);
  }
  return port;
}

function generateSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomUUID(), use: 'sig', alg: 'RS256' };
}

const idTokenTtl = readSeconds('OP_ID_TOKEN_TTL', 3600);
const accessTokenTtl = readSeconds('OP_ACCESS_TOKEN_TTL', 3600);
const refreshTokenTtl = readSeconds('OP_REFRESH_TOKEN_TTL', 86400);
const port = readPort();

// Grants and sessions must outlive the refresh token, or a refresh fails
// with invalid_grant before the refresh token itself expires.
const grantTtl = Math.max(refreshTokenTtl, 14 * 24 * 3600);

// oidc-provider 9.13 drops `offline_access` from an authorization request
// without prompt=consent (OpenID Connect Core 1.0 section 11), and the
// authorization code does not record the requested scope. aws-tip sends no
// prompt=consent but must still get a refresh token, so this set records, by
// PKCE code_challenge, which authorization requests asked for offline_access.
// NOTE: only GET authorization requests are inspected. A POST to /auth is
// not parsed here, so it never counts as asking for offline_access.
const offlineAccessChallenges = new Set();

function rememberOfflineAccessRequest(ctx) {
  if (ctx.method !== 'GET' || ctx.path !== '/auth') {
    return;
  }
  const scopes = String(ctx.query.scope ?? '').split(' ');
  const challenge = ctx.query.code_challenge;
  if (scopes.includes('offline_access') && typeof challenge === 'string' && challenge !== '') {
    offlineAccessChallenges.add(challenge);
  }
}

async function findAccount(_ctx, accountId) {
  return {
    accountId,
    async claims() {
      return {
        sub: accountId,
        email: `${accountId}@example.test`,
        email_verified: true,
      };
    },
  };
}

async function issueRefreshToken(_ctx, client, code) {
  if (!client.grantTypeAllowed('refresh_token')) {
    return false;
  }
  if (code.scopes.has('offline_access')) {
    return true;
  }
  return offlineAccessChallenges.has(code.codeChallenge);
}

const nativeClient = {
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: LOOPBACK_REDIRECT_URIS,
};

const configuration = {
  clients: [
    {
      ...nativeClient,
      client_id: TEST_CLIENT_ID,
      client_secret: TEST_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_post',
    },
    {
      ...nativeClient,
      client_id: PUBLIC_CLIENT_ID,
      token_endpoint_auth_method: 'none',
    },
  ],
  scopes: ['openid', 'email', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
  },
  conformIdTokenClaims: false,
  findAccount,
  issueRefreshToken,
  rotateRefreshToken: true,
  pkce: { required: () => true },
  clientBasedCORS: () => false,
  features: {
    devInteractions: { enabled: true },
  },
  cookies: {
    keys: ['aws-tip-test-cookie-key-1', 'aws-tip-test-cookie-key-2'],
  },
  jwks: { keys: [generateSigningKey()] },
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: idTokenTtl,
    RefreshToken: refreshTokenTtl,
    Interaction: 3600,
    Session: grantTtl,
    Grant: grantTtl,
  },
};

// Reads a small urlencoded body. It is only called for a request that is
// rejected before it reaches oidc-provider, which would read the stream again.
async function readFormBody(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Enforces client_secret_post: oidc-provider 9.13 also accepts HTTP Basic
// client authentication for a client registered with client_secret_post, so a
// token request with an Authorization header is rejected here. Logs one line
// per token request with the grant type, never a secret or a token.
async function tokenEndpointGuard(ctx, next) {
  if (ctx.method !== 'POST' || ctx.path !== '/token') {
    rememberOfflineAccessRequest(ctx);
    await next();
    return;
  }

  const hasAuthorizationHeader = ctx.get('authorization') !== '';
  if (hasAuthorizationHeader) {
    const body = await readFormBody(ctx.req);
    const grantType = body.get('grant_type') ?? 'missing';
    ctx.status = 401;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      error: 'invalid_client',
      error_description: 'client authentication failed: send client_id and client_secret in the request body (client_secret_post); the Authorization header is not accepted',
    };
    console.error(`op: token request grant_type=${grantType} authorization_header=present status=401 error=invalid_client`);
    return;
  }

  await next();

  const grantType = ctx.oidc?.params?.grant_type ?? 'missing';
  const error = ctx.status >= 400 ? ` error=${ctx.body?.error ?? 'unknown'}` : '';
  console.error(`op: token request grant_type=${grantType} authorization_header=absent status=${ctx.status}${error}`);
}

const server = createServer();
server.listen(port, '127.0.0.1');
try {
  await once(server, 'listening');
} catch (error) {
  console.error(`op: cannot listen on 127.0.0.1:${port}: ${error.message}`);
  process.exit(1);
}

const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, configuration);
provider.use(tokenEndpointGuard);
server.on('request', provider.callback());

function shutDown(signal) {
  console.error(`op: received ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', () => shutDown('SIGTERM'));
process.on('SIGINT', () => shutDown('SIGINT'));

console.error(`op: issuer ${issuer}, ID token TTL ${idTokenTtl} s, access token TTL ${accessTokenTtl} s, refresh token TTL ${refreshTokenTtl} s`);
process.stdout.write(`OP_LISTENING ${issuer}\n`);
