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
//
// Listens on 127.0.0.1 (and on ::1 when available) but its issuer is http://localhost:$PORT,
// so that its cookies are never sent to apps served on 127.0.0.1.
// Prints exactly one line on stdout, `READY http://localhost:$PORT`, once it accepts connections;
// everything else (oidc-provider's notices, events) goes to stderr.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import * as http from 'node:http';
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
// Clients: four per app URL, each registered for that app only.
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
      clientCredentials: { enabled: true },
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
    if (typeof ctx.body === 'string' && ctx.response.is('html')) {
      ctx.body = ctx.body.replace(EXTERNAL_IMPORT, '');
    }
  });

  for (const event of ['server_error', 'backchannel.error', 'authorization.error', 'grant.error',
    'end_session.error', 'introspection.error', 'revocation.error', 'userinfo.error']) {
    provider.on(event, (ctx, err) => {
      const e = err instanceof Error ? err : ctx;
      console.error(`[op] ${event}: ${e?.name || ''} ${e?.message || ''} ${e?.error_description || ''}`);
    });
  }
  // One line per token grant, so tests can count refreshes.
  provider.on('grant.success', (ctx) => {
    console.error(`[op] grant.success: client=${ctx.oidc.client?.clientId} grant_type=${ctx.oidc.params?.grant_type}`);
  });
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
  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
