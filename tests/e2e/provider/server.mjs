// A real OpenID Provider (panva's node-oidc-provider) for the end-to-end tests.
//
// Environment:
//   OP_PORT           port to listen on (default 4400; 0 = pick a free port, the READY line tells which)
//   OP_APP_URLS       comma-separated base URLs of the apps under test
//                     (default http://127.0.0.1:3000); see README.md for the clients made from it
//   OP_ACCESS_TOKEN_TTL  access token lifetime in seconds (default 600)
//   OP_ID_TOKEN_TTL      ID token lifetime in seconds (default 600)
//   OP_CONFORM_ID_TOKEN_CLAIMS  1 = ID tokens of the code flow carry only sub and protocol claims,
//                     email/profile claims come from userinfo only (node-oidc-provider's default);
//                     unset or 0 (default here) = those claims are in the ID token and in userinfo
//   OP_DPOP_REQUIRE_NONCE  1 (default) = every DPoP proof must carry a nonce of the provider (a
//                     request without one is answered `use_dpop_nonce` with a `DPoP-Nonce`, RFC 9449
//                     §8/§9); 0 = nonces are supported but only asked for when a proof's iat is stale
//   OP_CLIENT_KEYS_DIR  folder (created if missing) where the private keys of the private_key_jwt
//                     clients are written, `pkjwt-$i.key.pem`, new at every start (default: a new
//                     folder under the system's temp folder, named on stderr)
//
// Listens on 127.0.0.1 (and on ::1 when available) but its issuer is http://localhost:$PORT,
// so that its cookies are never sent to apps served on 127.0.0.1.
// Prints exactly one line on stdout, `READY http://localhost:$PORT`, once it accepts connections;
// everything else (oidc-provider's notices, events) goes to stderr.

import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import process from 'node:process';

// oidc-provider writes its NOTICEs with console.info (stdout): keep stdout for the READY line only.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const { default: Provider, errors } = await import('oidc-provider');

function intFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number.parseInt(raw, 10);
  if (!Number.isInteger(value) || value < 0 || String(value) !== raw.trim()) {
    console.error(`invalid ${name}: ${raw}`);
    process.exit(2);
  }
  return value;
}

const requestedPort = intFromEnv('OP_PORT', 4400);
const accessTokenTtl = intFromEnv('OP_ACCESS_TOKEN_TTL', 600);
const idTokenTtl = intFromEnv('OP_ID_TOKEN_TTL', 600);
const conformIdTokenClaims = intFromEnv('OP_CONFORM_ID_TOKEN_CLAIMS', 0) === 1;
const dpopRequireNonce = intFromEnv('OP_DPOP_REQUIRE_NONCE', 1) === 1;
const appUrls = (process.env.OP_APP_URLS || 'http://127.0.0.1:3000')
  .split(',')
  .map((s) => s.trim().replace(/\/+$/, ''))
  .filter(Boolean);

for (const app of appUrls) {
  try {
    new URL(app); // eslint-disable-line no-new
  } catch {
    console.error(`invalid URL in OP_APP_URLS: ${app}`);
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------------------------
// The private_key_jwt clients' keys: an EC P-256 key pair per app URL, new at every start. The
// public half is registered in the client's metadata (`jwks`) with kid = its RFC 7638 thumbprint;
// the private half (PKCS#8 PEM) is written to OP_CLIENT_KEYS_DIR for the app, and nowhere else.
const clientKeysDir = process.env.OP_CLIENT_KEYS_DIR
  || fs.mkdtempSync(path.join(os.tmpdir(), 'op-client-keys-'));
fs.mkdirSync(clientKeysDir, { recursive: true });

// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
function jwkThumbprint(jwk) {
  const required = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
    : jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
      : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(required)).digest('base64url');
}

function clientKey(clientId) {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const file = path.join(clientKeysDir, `${clientId}.key.pem`);
  fs.writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return { file, publicJwk: { ...jwk, kid: jwkThumbprint(jwk), alg: 'ES256', use: 'sig' } };
}

// ---------------------------------------------------------------------------------------------
// Clients: seven per app URL, each registered for that app only.
function clientsFor(app, i) {
  const common = {
    redirect_uris: [`${app}/auth/oidc/callback`],
    post_logout_redirect_uris: [`${app}/auth/logout/callback`],
    backchannel_logout_uri: `${app}/auth/oidc/backchannel-logout`,
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  };
  // Confidential clients may also get access tokens for the app's API (client credentials).
  const confidential = { ...common, grant_types: [...common.grant_types, 'client_credentials'] };
  return [
    {
      ...confidential,
      client_id: `basic-${i}`,
      client_secret: `basic-secret-${i}`,
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      ...confidential,
      client_id: `post-${i}`,
      client_secret: `post-secret-${i}`,
      token_endpoint_auth_method: 'client_secret_post',
    },
    {
      ...confidential,
      client_id: `es256-${i}`,
      client_secret: `es256-secret-${i}`,
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
    {
      ...common,
      client_id: `public-${i}`,
      token_endpoint_auth_method: 'none',
    },
    {
      // No secret: signed client assertions (RFC 7523) with the key in OP_CLIENT_KEYS_DIR, at
      // every endpoint that authenticates clients (token, PAR, introspection, revocation).
      ...confidential,
      client_id: `pkjwt-${i}`,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [clientKey(`pkjwt-${i}`).publicJwk] },
    },
    {
      // Authorization requests only through PAR (RFC 9126): a plain /auth request is refused.
      ...confidential,
      client_id: `par-${i}`,
      client_secret: `par-secret-${i}`,
      token_endpoint_auth_method: 'client_secret_basic',
      require_pushed_authorization_requests: true,
    },
    {
      // DPoP (RFC 9449): every token request must carry a DPoP proof, and the access tokens are
      // bound to the proof's key (`token_type: DPoP`, used with `Authorization: DPoP` + a proof).
      ...confidential,
      client_id: `dpop-${i}`,
      client_secret: `dpop-secret-${i}`,
      token_endpoint_auth_method: 'client_secret_basic',
      dpop_bound_access_tokens: true,
    },
  ];
}

const clients = appUrls.flatMap((app, i) => clientsFor(app, i));

// ---------------------------------------------------------------------------------------------
// The apps' APIs as resource servers (RFC 8707): `${app}/api/jwt` gets JWT access tokens
// (RFC 9068), `${app}/api/opaque` opaque ones for introspection; both with the app's URL as their
// audience, the scopes `read` and `admin`.
function resourceServer(indicator) {
  for (const app of appUrls) {
    if (indicator === `${app}/api/jwt`) {
      return { audience: app, scope: 'read admin', accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
    }
    if (indicator === `${app}/api/opaque`) {
      return { audience: app, scope: 'read admin', accessTokenTTL: 300, accessTokenFormat: 'opaque' };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Signing keys, new at every start.
function signingJwk(alg, type, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`,
    alg,
    use: 'sig',
  };
}

const jwks = {
  keys: [
    // The first key is the default for RS256 (the default id_token_signed_response_alg).
    signingJwk('RS256', 'rsa', { modulusLength: 2048 }),
    signingJwk('ES256', 'ec', { namedCurve: 'P-256' }),
  ],
};

// ---------------------------------------------------------------------------------------------
// Accounts: any login name is an account; its sub is the login name.
function capitalize(s) {
  return s.length ? s[0].toUpperCase() + s.slice(1) : s;
}

async function findAccount(ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: `${sub}@example.test`,
        email_verified: true,
        name: capitalize(sub),
        preferred_username: sub,
      };
    },
  };
}

// The provider's stock pages @import a web font from the internet; there is no internet here.
const EXTERNAL_IMPORT = /@import url\(https?:\/\/[^)]*\);?/g;

async function main() {
  // The port must be known before the Provider (its issuer carries it): bind first.
  const handler = { fn: (req, res) => { res.statusCode = 503; res.end(); } };
  const servers = [];

  const listen = (host, port) => new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => handler.fn(req, res));
    server.keepAliveTimeout = 5000;
    const onError = (err) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      servers.push(server);
      resolve(server.address().port);
    });
  });

  const port = await listen('127.0.0.1', requestedPort);
  // `localhost` may resolve to ::1 first on some machines: answer there too when possible.
  try {
    await listen('::1', port);
  } catch (err) {
    console.error(`note: not listening on [::1]:${port} (${err.code || err.message})`);
  }

  const issuer = `http://localhost:${port}`;

  const provider = new Provider(issuer, {
    clients,
    jwks,
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    conformIdTokenClaims,
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      userinfo: { enabled: true },
      claimsParameter: { enabled: true },
      // On for every client (v9's default, spelled out); required only by the clients whose
      // metadata says `require_pushed_authorization_requests: true` (`par-*`), so discovery does
      // not say `require_pushed_authorization_requests`.
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      clientCredentials: { enabled: true },
      // DPoP (RFC 9449) for every client that sends proofs; required by the clients whose
      // metadata says `dpop_bound_access_tokens: true` (`dpop-*`). Nonces (§8, §9) from a secret
      // new at every start; required in every proof unless OP_DPOP_REQUIRE_NONCE=0.
      dPoP: {
        enabled: true,
        nonceSecret: randomBytes(32),
        requireNonce: () => dpopRequireNonce,
        allowReplay: false,
      },
      resourceIndicators: {
        enabled: true,
        // Logins ask for no resource: their access tokens are for userinfo, as before.
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, indicator) => {
          const info = resourceServer(indicator);
          if (!info) throw new errors.InvalidTarget();
          return info;
        },
      },
    },
    pkce: {
      // PKCE (S256 only, the v9 default) for every client, confidential ones included.
      required: () => true,
    },
    // Refresh tokens for every client allowed the refresh_token grant, without offline_access.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: 120,
      IdToken: idTokenTtl,
      RefreshToken: 24 * 60 * 60,
      Interaction: 30 * 60,
      Session: 24 * 60 * 60,
      Grant: 24 * 60 * 60,
    },
    cookies: {
      keys: ['e2e-only-cookie-signing-key'],
    },
    // v9 guards its outgoing requests against loopback and private addresses (SSRF protection,
    // by handing a guarded undici dispatcher to fetch). The apps under test live on 127.0.0.1:
    // drop the guarded dispatcher so back-channel logout POSTs reach them.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options; // eslint-disable-line no-unused-vars
      return globalThis.fetch(url, rest);
    },
  });

  provider.use(async (ctx, next) => {
    await next();
    // One line per request authenticated by a client assertion (RFC 7523), so tests can tell
    // which endpoints saw private_key_jwt / client_secret_jwt and what they answered.
    // (At PAR the client's authentication is not among the params, only in the body.)
    if ((ctx.oidc?.params?.client_assertion ?? ctx.oidc?.body?.client_assertion) !== undefined) {
      const { client } = ctx.oidc;
      console.error(`[op] client_assertion: client=${client?.clientId} method=${client?.clientAuthMethod} route=${ctx.oidc.route} status=${ctx.status}`);
    }
    // One line per answer of the token and userinfo endpoints to a request with a DPoP proof or
    // a DPoP access token, so tests can tell how the tokens were bound and used.
    const dpopProof = ctx.get('DPoP') !== '';
    const scheme = ctx.get('authorization').split(' ')[0] || '-';
    if (ctx.oidc?.route === 'token' && (dpopProof || ctx.oidc.client?.dpopBoundAccessTokens)) {
      const body = typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {};
      console.error(`[op] dpop.token: client=${ctx.oidc.client?.clientId} grant_type=${ctx.oidc.params?.grant_type} proof=${dpopProof} status=${ctx.status} token_type=${body.token_type ?? '-'} error=${body.error ?? '-'} nonce=${ctx.response.get('dpop-nonce') ? 'sent' : '-'}`);
    }
    if (ctx.oidc?.route === 'userinfo' && (dpopProof || scheme.toLowerCase() === 'dpop')) {
      const client = ctx.oidc.client?.clientId ?? ctx.oidc.accessToken?.clientId;
      const error = typeof ctx.body === 'object' && ctx.body !== null ? ctx.body.error ?? '-' : '-';
      console.error(`[op] dpop.userinfo: client=${client} scheme=${scheme} proof=${dpopProof} status=${ctx.status} error=${error}`);
    }
    if (typeof ctx.body === 'string' && ctx.response.is('html')) {
      ctx.body = ctx.body.replace(EXTERNAL_IMPORT, '');
    }
  });

  for (const event of ['server_error', 'backchannel.error', 'authorization.error', 'grant.error',
    'end_session.error', 'introspection.error', 'revocation.error', 'userinfo.error',
    'pushed_authorization_request.error']) {
    provider.on(event, (ctx, err) => {
      const e = err instanceof Error ? err : ctx;
      // error_detail says why a client authentication failed (its description is generic).
      const detail = e?.error_detail ? ` (${e.error_detail})` : '';
      console.error(`[op] ${event}: ${e?.name || ''} ${e?.message || ''} ${e?.error_description || ''}${detail}`);
    });
  }
  // One line per token grant, so tests can count refreshes.
  provider.on('grant.success', (ctx) => {
    console.error(`[op] grant.success: client=${ctx.oidc.client?.clientId} grant_type=${ctx.oidc.params?.grant_type}`);
  });
  // One line per pushed authorization request, so tests can tell PAR was used.
  provider.on('pushed_authorization_request.success', (ctx, client) => {
    console.error(`[op] par.success: client=${client.clientId}`);
  });
  // One line per access token issued, with its binding: `token_type=DPoP jkt=<thumbprint>` for
  // a DPoP-bound one, `token_type=Bearer jkt=-` otherwise.
  for (const event of ['access_token.saved', 'access_token.issued']) {
    provider.on(event, (token) => {
      console.error(`[op] access_token: client=${token.clientId} token_type=${token.tokenType} jkt=${token.jkt ?? '-'}`);
    });
  }
  provider.on('backchannel.success', (ctx, client, accountId, sid) => {
    console.error(`[op] backchannel.success: client=${client.clientId} sub=${accountId} sid=${sid}`);
  });

  const callback = provider.callback();
  handler.fn = callback;

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    console.error(`[op] ${signal}: stopping`);
    let open = servers.length;
    const done = () => {
      open -= 1;
      if (open <= 0) process.exit(0);
    };
    for (const server of servers) {
      server.close(done);
      server.closeAllConnections();
    }
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  console.error(`[op] issuer ${issuer}; clients: ${clients.map((c) => c.client_id).join(', ')}`);
  console.error(`[op] private keys of the private_key_jwt clients in ${clientKeysDir}`);
  console.error(`[op] DPoP nonces: ${dpopRequireNonce ? 'required' : 'supported, not required'}`);
  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
