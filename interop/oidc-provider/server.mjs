// oidc-provider (npm `oidc-provider`, panva) as the operator AS of ../shared/BINDING.md: the
// authorization server of steps 4-10 and the introspection of steps 15-16.
//
//   node interop/oidc-provider/server.mjs STATE_DIR
//
// STATE_DIR is the reference network's state (started first by start.sh): its test CA's leaf for
// the AS (pki/as.pem, pki/as.key), the key log file (keylogs/as.keylog) and accounts.json, the
// operator's identity store (Web ID -> IMPI, IMPUs) exported from its SQLite database.
//
// Everything below is oidc-provider's own configuration surface. The product is not changed to
// look like the reference AS: its endpoints keep their behaviour, and its login and consent pages
// are the deployment's interaction routes oidc-provider asks for (interactions.mjs: a login page
// that checks the Web ID and password against the identity store, then a consent page, in the
// shape of its devInteractions, which accept any password and are development-only). Three small
// Koa middlewares adapt what the binding asks beyond OAuth/OIDC and that oidc-provider has no
// setting for; each is marked ADAPTER.
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import Provider, { errors } from 'oidc-provider';

import { interactionRoutes } from './interactions.mjs';

const STATE = path.resolve(process.argv[2] || '.interop/oidc-provider');
const HOST = process.env.AS_HOST || '127.0.0.12';
const PORT = Number(process.env.AS_PORT || 9443);
const ISSUER = `https://${HOST}:${PORT}`;
const WSF_AUDIENCE = 'wsf.operator.example';           // BINDING: JWT `aud`
const WSF_RESOURCE = `https://${WSF_AUDIENCE}/`;         // RFC 8707 wants an absolute URI
const SCOPE = 'ims-webrtc';
const WSF_URL = process.env.WSF_URL || 'wss://127.0.0.13:7443/sip';
// PICS token.format. oidc-provider answers the introspection of a JWT access token with
// `unsupported_token_type` ("Structured JWT Tokens cannot be introspected"), so a JWT is verified
// by the WSF itself (PICS wsf.verify local_jwt) and introspection needs opaque tokens.
const TOKEN_FORMAT = process.env.TOKEN_FORMAT || 'jwt';
// BINDING: exp 5 minutes by default; start.sh passes the reference profile's short lifetime so
// the expiry cases of the catalog wait seconds, not minutes
const ACCESS_TOKEN_TTL = Number(process.env.ACCESS_TOKEN_TTL || 300);
const APP_REDIRECT = 'https://127.0.0.11:8443/oauth/callback';

// Two more clients of the third party, as the catalog's genuine-token cases ask for
// (pixit.oauth.short_lived_client, other_audience_client): one whose tokens expire within
// seconds, one whose tokens are for another resource server (a voicemail service).
const SHORT_LIVED_CLIENT = 'thirdparty-short-lived';
const SHORT_LIVED_TTL = 2;
const OTHER_AUDIENCE_CLIENT = 'thirdparty-voicemail';
const OTHER_AUDIENCE = 'voicemail.operator.example';
const RESOURCE_AUDIENCES = { [WSF_RESOURCE]: WSF_AUDIENCE, [`https://${OTHER_AUDIENCE}/`]: OTHER_AUDIENCE };

const appClient = (clientId, secret) => ({
  client_id: clientId,
  client_secret: secret,
  token_endpoint_auth_method: 'client_secret_basic',
  redirect_uris: [APP_REDIRECT],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  scope: SCOPE,
  id_token_signed_response_alg: 'ES256',             // the only key is ES256 (no ID token is asked for)
});

// The operator's identity store, read once: fixture users only (the profile has no provisioning).
// Each row carries the Web ID's scrypt password hash, which the login page checks.
const accounts = new Map(
  JSON.parse(fs.readFileSync(path.join(STATE, 'accounts.json'), 'utf8')).map((a) => [a.web_id, a]),
);

const configuration = {
  clients: [
    appClient('thirdparty-webrtc-app', process.env.APP_SECRET || 'thirdparty-webrtc-app-secret'),
    appClient(SHORT_LIVED_CLIENT, 'thirdparty-short-lived-secret'),
    appClient(OTHER_AUDIENCE_CLIENT, 'thirdparty-voicemail-secret'),
    {
      // the WSF only introspects: no grant, no response type, authenticated with HTTP Basic
      client_id: 'wsf',
      client_secret: process.env.WSF_SECRET || 'wsf-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: 'ES256',
    },
  ],
  clientAuthMethods: ['client_secret_basic'],
  scopes: [SCOPE],
  claims: { openid: ['sub'] },
  responseTypes: ['code'],
  pkce: { required: () => true },                       // S256 is the only method oidc-provider knows
  allowOmittingSingleRegisteredRedirectUri: false,     // BINDING: redirect URI exactly
  routes: {                                            // BINDING's paths; oidc-provider's are names only
    authorization: '/authorize',
    token: '/token',
    introspection: '/introspect',
    revocation: '/revoke',
    jwks: '/jwks',
  },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,                             // BINDING: code lifetime 60 s
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  features: {
    // development-only pages that accept any password; interactionRoutes below replaces them
    // at oidc-provider's default interactions.url, /interaction/<uid>
    devInteractions: { enabled: false },
    introspection: {
      enabled: true,
      // RFC 7662 2.1: only the WSF (an authenticated resource server client) may introspect
      allowedPolicy: async (ctx, client) => client.clientId === 'wsf',
    },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // the 3rdWWS's request (BINDING step 3) names no resource: its tokens are for the WSF
      defaultResource: async (ctx, client) => (client.clientId === OTHER_AUDIENCE_CLIENT
        ? `https://${OTHER_AUDIENCE}/` : WSF_RESOURCE),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator, client) => {
        if (!RESOURCE_AUDIENCES[indicator]) throw new errors.InvalidTarget();
        return {
          scope: SCOPE,
          audience: RESOURCE_AUDIENCES[indicator],
          accessTokenTTL: client.clientId === SHORT_LIVED_CLIENT ? SHORT_LIVED_TTL : ACCESS_TOKEN_TTL,
          accessTokenFormat: TOKEN_FORMAT,             // jwt: RFC 9068, typ at+jwt
          ...(TOKEN_FORMAT === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
        };
      },
    },
  },
  findAccount: async (ctx, id) => {
    const account = accounts.get(id);
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id }) };
  },
  cookies: { keys: [process.env.COOKIE_KEY || 'interop-oidc-provider-cookie-key'] },
  // one ES256 signing key per start (BINDING: ES256 by default); the WSF reads it from jwks_uri
  jwks: { keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
    alg: 'ES256', use: 'sig', kid: `es256-${Date.now()}` }] },
};

const provider = new Provider(ISSUER, configuration);

// The login (Web ID and password checked) and consent pages at /interaction/<uid>.
provider.use(interactionRoutes(provider, accounts));

// ADAPTER (RFC 8414 3): oidc-provider publishes only /.well-known/openid-configuration; the
// binding's WSF and harness read /.well-known/oauth-authorization-server. Same document.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/.well-known/oauth-authorization-server') {
    ctx.path = '/.well-known/openid-configuration';
  }
  await next();
});

// ADAPTER (BINDING step 16): the Web ID -> IMPI/IMPUs mapping is returned at introspection only
// (extension members `impi`, `impu`), never put into the JWT (extraTokenClaims would sign it in).
// ADAPTER (BINDING step 10, PICS token.wsf_url_member): the token response names the WSF URL.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.method !== 'POST' || ctx.status !== 200 || !ctx.body || typeof ctx.body !== 'object') return;
  if (ctx.path === '/introspect' && ctx.body.active === true) {
    const account = accounts.get(ctx.body.sub);
    if (account) ctx.body = { ...ctx.body, impi: account.impi, impu: account.impus };
  } else if (ctx.path === '/token' && typeof ctx.body.access_token === 'string') {
    ctx.body = { ...ctx.body, wsf_url: WSF_URL };
  }
});

const server = https.createServer({
  key: fs.readFileSync(path.join(STATE, 'pki', 'as.key')),
  cert: fs.readFileSync(path.join(STATE, 'pki', 'as.pem')),
  minVersion: 'TLSv1.2',
}, provider.callback());

// BINDING "Captured legs": every TLS endpoint writes an NSS key log so its legs can be decrypted
const keylog = path.join(STATE, 'keylogs', 'as.keylog');
fs.mkdirSync(path.dirname(keylog), { recursive: true });
const keylogFd = fs.openSync(keylog, 'a', 0o600);
server.on('keylog', (line) => fs.writeSync(keylogFd, line));

server.listen(PORT, HOST, () => {
  console.log(`oidc-provider listening on ${ISSUER}`);
});
