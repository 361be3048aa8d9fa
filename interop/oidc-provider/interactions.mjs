// The operator's own login and consent pages for oidc-provider, in place of its devInteractions.
//
// oidc-provider leaves the authentication of the user to the deployment (RFC 6749 3.1 leaves it to
// the AS): it redirects GET /authorize to `interactions.url` (/interaction/<uid>, its default) and
// expects the deployment's routes there to read the pending prompt with
// provider.interactionDetails and to answer it with provider.interactionFinished (the shape of its
// example/routes/koa.js). devInteractions, its quick-start pages, accept any login with any
// password; these pages check the Web ID and password against the operator's identity store.
//
// The pages keep devInteractions' shape, so nothing of oidc-provider's flow changes: a login page
// (hidden `prompt`, `login`, `password`, a "Sign-in" button), then a consent page (hidden `prompt`,
// a "Continue" button), each with a "[ Cancel ]" link to /interaction/<uid>/abort; both forms POST
// to /interaction/<uid>. A wrong Web ID or password gets the login page again (200, an error line,
// no redirect, no code). No secret is logged: the password is only hashed and compared.
import crypto from 'node:crypto';
import { promisify } from 'node:util';

import { errors } from 'oidc-provider';

const scrypt = promisify(crypto.scrypt);
const MAX_FORM_BYTES = 16 * 1024;   // a login form is a few hundred bytes
const FORM_READ_MS = 5000;          // a client that stops sending mid-form does not hold the request

// ---- the identity store's password hashes (refnet/store.py: scrypt$N$r$p$salt-hex$digest-hex)

// An unknown Web ID still costs one scrypt, so the answer time does not tell which Web IDs exist.
const DUMMY_HASH = `scrypt$2048$8$1$${'00'.repeat(16)}$${'00'.repeat(32)}`;

export async function verifyPassword(password, stored) {
  const parts = String(stored).split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt' || typeof password !== 'string') return false;
  const [, n, r, p, salt, digest] = parts;
  const want = Buffer.from(digest, 'hex');
  if (want.length === 0) return false;
  const N = Number(n);
  try {
    const got = await scrypt(password, Buffer.from(salt, 'hex'), want.length, {
      N, r: Number(r), p: Number(p), maxmem: 256 * N * Number(r) + 1024 * 1024,
    });
    return crypto.timingSafeEqual(got, want);
  } catch {
    return false;   // parameters scrypt refuses (a damaged store row): nobody signs in with it
  }
}

// ---- pages

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body, abortUrl) {
  return `<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>${esc(title)}</title>
  </head>
  <body>
    <div class="login-card">
      <h1>${esc(title)}</h1>
      ${body}
      ${abortUrl ? `<div class="login-help"><a href="${esc(abortUrl)}">[ Cancel ]</a></div>` : ''}
    </div>
  </body>
</html>
`;
}

function loginPage(uid, params, failedLogin) {
  const login = failedLogin ?? params.login_hint;
  return page('Sign-in', `${failedLogin !== undefined ? '<p class="error">Invalid Web ID or password.</p>' : ''}
      <form autocomplete="off" action="/interaction/${esc(uid)}" method="post">
        <input type="hidden" name="prompt" value="login"/>
        <input required type="text" name="login" placeholder="Web ID"${login ? ` value="${esc(login)}"` : ' autofocus="on"'}>
        <input required type="password" name="password" placeholder="Password"${login ? ' autofocus="on"' : ''}>
        <button type="submit" class="login login-submit">Sign-in</button>
      </form>`, `/interaction/${uid}/abort`);
}

function consentPage(uid, client, details) {
  const scopes = Object.entries(details.missingResourceScopes || {})
    .map(([resource, s]) => `<li>${esc(resource)}: ${s.map(esc).join(' ')}</li>`).join('');
  return page('Authorize', `<p>${esc(client?.clientName || client?.clientId)} asks for access to:</p>
      <ul>${scopes || '<li>the authorization you gave before</li>'}</ul>
      <form autocomplete="off" action="/interaction/${esc(uid)}" method="post">
        <input type="hidden" name="prompt" value="consent"/>
        <button autofocus type="submit" class="login login-submit">Continue</button>
      </form>`, `/interaction/${uid}/abort`);
}

function errorPage(ctx, status, error, description) {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = page('Error', `<p>${esc(error)}: ${esc(description)}</p>`);
}

// ---- the form body (application/x-www-form-urlencoded), bounded in size and time

function readForm(ctx) {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    return Promise.reject(Object.assign(new Error('the form must be application/x-www-form-urlencoded'), { status: 415 }));
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const timer = setTimeout(() => reject(Object.assign(new Error('the form was not sent in time'), { status: 408 })), FORM_READ_MS);
    ctx.req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) {
        clearTimeout(timer);
        reject(Object.assign(new Error('the form is too large'), { status: 413 }));
        ctx.req.destroy();
      } else chunks.push(chunk);
    });
    ctx.req.on('end', () => {
      clearTimeout(timer);
      resolve(Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    });
    ctx.req.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

// ---- the prompts

async function finishLogin(ctx, provider, accounts, details, form) {
  const account = accounts.get(form.login);
  const ok = await verifyPassword(form.password, account ? account.password_hash : DUMMY_HASH);
  if (!account || !ok) {
    // the login page again: no interaction result, so no redirect and no code
    ctx.status = 200;
    ctx.type = 'html';
    ctx.body = loginPage(details.uid, details.params, String(form.login ?? ''));
    return;
  }
  await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: account.web_id } },
    { mergeWithLastSubmission: false });
}

async function finishConsent(provider, ctx, details) {
  const { prompt: { details: missing }, params, session, grantId } = details;
  const grant = grantId ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scope.join(' '));
  }
  await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: true });
}

// Koa middleware for provider.use: GET /interaction/<uid> (the page of the pending prompt), POST
// /interaction/<uid> (its form), GET /interaction/<uid>/abort (the user refuses: access_denied).
// `accounts`: Web ID -> {web_id, password_hash, ...}, the operator's identity store.
export function interactionRoutes(provider, accounts) {
  return async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)(\/abort)?$/.exec(ctx.path);
    if (!match) return next();
    ctx.set('cache-control', 'no-store');
    // RFC 9700 4.16: the sign-in pages may not be framed by another site (clickjacking)
    ctx.set('content-security-policy', "frame-ancestors 'none'");
    ctx.set('x-frame-options', 'DENY');
    try {
      // the interaction is the one of the browser's _interaction cookie; the URL must name it
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== match[1]) throw new errors.SessionNotFound('interaction session and URL differ');
      if (match[2]) {
        if (ctx.method !== 'GET') return errorPage(ctx, 405, 'invalid_request', 'method not allowed');
        return provider.interactionFinished(ctx.req, ctx.res,
          { error: 'access_denied', error_description: 'End-User aborted interaction' },
          { mergeWithLastSubmission: false });
      }
      const prompt = details.prompt.name;
      if (ctx.method === 'GET') {
        ctx.type = 'html';
        if (prompt === 'login') ctx.body = loginPage(details.uid, details.params);
        else if (prompt === 'consent') {
          ctx.body = consentPage(details.uid, await provider.Client.find(details.params.client_id), details.prompt.details);
        } else errorPage(ctx, 501, 'server_error', `prompt ${prompt} is not implemented`);
        return undefined;
      }
      if (ctx.method !== 'POST') return errorPage(ctx, 405, 'invalid_request', 'method not allowed');
      const form = await readForm(ctx);
      // a form of another step (or a forged one) is refused: it cannot answer the pending prompt
      if (form.prompt !== prompt) return errorPage(ctx, 400, 'invalid_request', 'the form does not answer the pending step');
      if (prompt === 'login') return finishLogin(ctx, provider, accounts, details, form);
      if (prompt === 'consent') return finishConsent(provider, ctx, details);
      return errorPage(ctx, 501, 'server_error', `prompt ${prompt} is not implemented`);
    } catch (err) {
      if (err instanceof errors.SessionNotFound) return errorPage(ctx, 400, err.message, err.error_description);
      if (err.status >= 400 && err.status < 500) return errorPage(ctx, err.status, 'invalid_request', err.message);
      throw err;
    }
  };
}
