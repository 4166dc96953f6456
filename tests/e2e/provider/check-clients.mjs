// Checks the provider's three special clients as a relying party uses them, without any app:
//
//   node check-clients.mjs <issuer> <app URL> <OP_CLIENT_KEYS_DIR>
//
// - `pkjwt-0`: client assertions (private_key_jwt, ES256, kid = the RFC 7638 thumbprint of the
//   public key, signed with `<keys dir>/pkjwt-0.key.pem`) are accepted with `aud` = the issuer at
//   the token, introspection, revocation and PAR endpoints, and with `aud` = the endpoint's URL;
//   a wrong `aud`, a replayed assertion and a client secret are refused.
// - `par-0`: a plain authorization request is refused (redirect with `invalid_request`), a pushed
//   one (PAR with client_secret_basic) goes on to the login page.
// - `dpop-0`: a token request without a DPoP proof is refused; one with a proof but no nonce is
//   answered `use_dpop_nonce` with a `DPoP-Nonce` (when OP_DPOP_REQUIRE_NONCE is not 0); with
//   the nonce it gets a `token_type: DPoP` access token that introspection shows bound to the
//   proof's key (`cnf.jkt`); a replayed proof is refused.
//
// Prints one line per check on stdout, exits 1 on the first failure.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';

const [issuer, app, keysDir] = process.argv.slice(2);
if (!issuer || !app || !keysDir) {
  console.error('usage: node check-clients.mjs <issuer> <app URL> <keys dir>');
  process.exit(2);
}

function check(what, ok, detail) {
  if (!ok) {
    console.log(`FAILED ${what}: ${detail}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

const key = createPrivateKey(fs.readFileSync(path.join(keysDir, 'pkjwt-0.key.pem')));
const jwk = createPublicKey(key).export({ format: 'jwk' });
const kid = createHash('sha256')
  .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
  .digest('base64url');
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

function assertion(aud) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: 'pkjwt-0', sub: 'pkjwt-0', aud, jti: randomUUID(), iat: now, exp: now + 60 };
  const input = `${b64({ alg: 'ES256', kid, typ: 'JWT' })}.${b64(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

async function post(route, form, auth) {
  const headers = {};
  const body = new URLSearchParams(form);
  if (auth?.assertion) {
    body.set('client_assertion_type', ASSERTION_TYPE);
    body.set('client_assertion', auth.assertion);
  }
  if (auth?.basic) headers.authorization = `Basic ${Buffer.from(auth.basic).toString('base64')}`;
  if (auth?.dpop) headers.dpop = auth.dpop;
  const res = await fetch(`${issuer}${route}`, { method: 'POST', headers, body, redirect: 'manual' });
  const text = await res.text();
  let json = {};
  try { json = JSON.parse(text || '{}'); } catch { /* not JSON */ }
  return { status: res.status, json, text, nonce: res.headers.get('dpop-nonce') };
}

const endpoints = { token: '/token', introspection: '/token/introspection', revocation: '/token/revocation', par: '/request' };
const opaque = { grant_type: 'client_credentials', resource: `${app}/api/opaque`, scope: 'read' };
const authorization = {
  client_id: 'pkjwt-0',
  response_type: 'code',
  redirect_uri: `${app}/auth/oidc/callback`,
  scope: 'openid',
  state: 'check',
  code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  code_challenge_method: 'S256',
};

for (const audience of ['issuer', 'endpoint']) {
  const aud = (route) => (audience === 'issuer' ? issuer : `${issuer}${route}`);
  let r = await post(endpoints.token, opaque, { assertion: assertion(aud(endpoints.token)) });
  check(`pkjwt-0 at the token endpoint, aud = ${audience}`, r.status === 200 && r.json.access_token, `${r.status} ${r.text}`);
  const token = r.json.access_token;
  r = await post(endpoints.introspection, { token }, { assertion: assertion(aud(endpoints.introspection)) });
  check(`pkjwt-0 at the introspection endpoint, aud = ${audience}`, r.status === 200 && r.json.active === true && r.json.client_id === 'pkjwt-0', `${r.status} ${r.text}`);
  r = await post(endpoints.revocation, { token }, { assertion: assertion(aud(endpoints.revocation)) });
  check(`pkjwt-0 at the revocation endpoint, aud = ${audience}`, r.status === 200, `${r.status} ${r.text}`);
  r = await post(endpoints.introspection, { token }, { assertion: assertion(aud(endpoints.introspection)) });
  check(`the revoked token is inactive (aud = ${audience})`, r.status === 200 && r.json.active === false, `${r.status} ${r.text}`);
  r = await post(endpoints.par, authorization, { assertion: assertion(aud(endpoints.par)) });
  check(`pkjwt-0 at the PAR endpoint, aud = ${audience}`, r.status === 201 && r.json.request_uri, `${r.status} ${r.text}`);
}

let r = await post(endpoints.token, opaque, { assertion: assertion('http://localhost:1/elsewhere') });
check('pkjwt-0 with a wrong aud is refused', r.status === 401 && r.json.error === 'invalid_client', `${r.status} ${r.text}`);
const once = assertion(issuer);
r = await post(endpoints.token, opaque, { assertion: once });
check('pkjwt-0: a fresh assertion', r.status === 200, `${r.status} ${r.text}`);
r = await post(endpoints.token, opaque, { assertion: once });
check('pkjwt-0: the same assertion again is refused', r.status === 401 && r.json.error === 'invalid_client', `${r.status} ${r.text}`);
r = await post(endpoints.token, opaque, { basic: 'pkjwt-0:a-secret' });
check('pkjwt-0 with a client secret is refused', r.status === 401 && r.json.error === 'invalid_client', `${r.status} ${r.text}`);

const par = { ...authorization, client_id: 'par-0' };
let res = await fetch(`${issuer}/auth?${new URLSearchParams(par)}`, { redirect: 'manual' });
const refused = res.headers.get('location') || '';
check(
  'par-0 without PAR is refused',
  res.status === 303 && refused.startsWith(`${app}/auth/oidc/callback?error=invalid_request`),
  `${res.status} ${refused}`,
);
r = await post(endpoints.par, par, { basic: 'par-0:par-secret-0' });
check('par-0 at the PAR endpoint', r.status === 201 && r.json.request_uri, `${r.status} ${r.text}`);
res = await fetch(`${issuer}/auth?${new URLSearchParams({ client_id: 'par-0', request_uri: r.json.request_uri })}`, { redirect: 'manual' });
const next = res.headers.get('location') || '';
check('par-0 with the pushed request goes on to the login', res.status === 303 && next.startsWith('/interaction/'), `${res.status} ${next}`);

// dpop-0: DPoP proofs (RFC 9449 §4) by a key of our own, ES256, the public key in the header.
const dpop = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const dpopJwk = dpop.publicKey.export({ format: 'jwk' });
const dpopJkt = createHash('sha256')
  .update(JSON.stringify({ crv: dpopJwk.crv, kty: dpopJwk.kty, x: dpopJwk.x, y: dpopJwk.y }))
  .digest('base64url');
function proof(htu, nonce) {
  const claims = { jti: randomUUID(), htm: 'POST', htu, iat: Math.floor(Date.now() / 1000), ...(nonce ? { nonce } : {}) };
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: dpopJwk.kty, crv: dpopJwk.crv, x: dpopJwk.x, y: dpopJwk.y } };
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key: dpop.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}
const dpopBasic = 'dpop-0:dpop-secret-0';
const tokenUrl = `${issuer}${endpoints.token}`;
r = await post(endpoints.token, opaque, { basic: dpopBasic });
check('dpop-0 without a DPoP proof is refused', r.status === 400 && r.json.error === 'invalid_grant', `${r.status} ${r.text}`);
r = await post(endpoints.token, opaque, { basic: dpopBasic, dpop: proof(tokenUrl) });
let nonce = r.nonce;
if (r.status === 400) {
  check('dpop-0 with a proof without a nonce is asked for one', r.json.error === 'use_dpop_nonce' && nonce, `${r.status} ${r.text} (DPoP-Nonce: ${nonce})`);
  r = await post(endpoints.token, opaque, { basic: dpopBasic, dpop: proof(tokenUrl, nonce) });
}
check('dpop-0 with a DPoP proof gets a DPoP token', r.status === 200 && r.json.token_type === 'DPoP' && r.json.access_token, `${r.status} ${r.text}`);
const bound = r.json.access_token;
r = await post(endpoints.introspection, { token: bound }, { basic: dpopBasic });
check('the DPoP token is bound to the proof\'s key (cnf.jkt)', r.status === 200 && r.json.active === true && r.json.cnf?.jkt === dpopJkt, `${r.status} ${r.text} (expected jkt ${dpopJkt})`);
nonce = r.nonce ?? nonce;
const used = proof(tokenUrl, nonce);
r = await post(endpoints.token, opaque, { basic: dpopBasic, dpop: used });
check('dpop-0: a fresh proof', r.status === 200, `${r.status} ${r.text}`);
r = await post(endpoints.token, opaque, { basic: dpopBasic, dpop: used });
check('dpop-0: the same proof again is refused', r.status === 400 && r.json.error === 'invalid_grant', `${r.status} ${r.text}`);
