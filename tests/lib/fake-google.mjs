// A fake Google on 127.0.0.1, the part every Google API shares: the OAuth token endpoint
// (authorization code with PKCE, refresh tokens, `invalid_grant` on demand, adjustable token
// lifetime, a delay to make refreshes overlap, a count of refreshes), the revocation endpoint
// (`POST /revoke` with `token=…`: the whole grant goes; recorded in `revocations`), access-token checks with
// Google's 401 shape, and the batch endpoints (`multipart/mixed`, answered by the API routes;
// parts past the 50th get 429 as Google's concurrency limit gives them; `g.batchSizes`).
// Gmail and Calendar add their routes with `fake-gmail.mjs` / `fake-calendar.mjs`.
import { createHash, randomBytes } from 'node:crypto';
import { startFake } from './fake-upstream.mjs';

export const GOOGLE_CLIENT_ID = 'google-client-id.apps.googleusercontent.com';
export const GOOGLE_CLIENT_SECRET = 'google-client-secret-for-tests';

export async function startFakeGoogle(t) {
  const fake = await startFake(t, 'google');
  const g = {
    fake,
    url: fake.url,
    tokenUrl: `${fake.url}/token`,
    accountsUrl: `${fake.url}/accounts`,
    /** Variables for the service under test. */
    vars() {
      return {
        GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET,
        GOOGLE_OAUTH_TOKEN_URL: `${fake.url}/token`, GOOGLE_ACCOUNTS_URL: `${fake.url}/accounts`, GOOGLE_OAUTH_REVOKE_URL: `${fake.url}/revoke`,
        GMAIL_API_URL: fake.url, GOOGLE_CALENDAR_API_URL: fake.url,
      };
    },
    codes: new Map(), // code → {email, challenge, redirectUri, scope, name, verified}
    refreshTokens: new Map(), // refresh token → {email, revoked}
    accessTokens: new Map(), // access token → {email, expiresAt (ms)}
    lifetimeSeconds: 3599,
    refreshDelayMs: 0,
    refreshes: 0,
    /** Every revocation request: {token, known} (known: a live token of a grant). */
    revocations: [],
    /** Issues an authorization code for `email` (as Google's consent screen would). */
    issueCode({ email, challenge, redirectUri, scope = '', name = 'Test User', verified = true }) {
      const code = `4/${randomBytes(12).toString('hex')}`;
      this.codes.set(code, { email, challenge, redirectUri, scope, name, verified });
      return code;
    },
    /** Revokes every refresh token of `email` (the next refresh answers invalid_grant). */
    revoke(email) {
      for (const r of this.refreshTokens.values()) if (r.email === email) r.revoked = true;
      for (const [t, a] of this.accessTokens) if (a.email === email) this.accessTokens.delete(t);
    },
    /** Expires every access token of `email` now. */
    expire(email) {
      for (const a of this.accessTokens.values()) if (a.email === email) a.expiresAt = 0;
    },
    /** The account a request's bearer token belongs to, or undefined (expired, unknown). */
    account(req) {
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const a = this.accessTokens.get(token);
      return a && a.expiresAt > Date.now() ? a.email : undefined;
    },
    unauthorized: {
      status: 401,
      json: { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED', errors: [{ reason: 'authError', message: 'Invalid Credentials' }] } },
      headers: { 'www-authenticate': 'Bearer realm="https://accounts.google.com/"' },
    },
    error(status, message, reason = 'invalid') {
      return { status, json: { error: { code: status, message, errors: [{ reason, message }] } } };
    },
  };
  const issueAccess = (email, seconds) => {
    const token = `ya29.${randomBytes(16).toString('hex')}`;
    g.accessTokens.set(token, { email, expiresAt: Date.now() + seconds * 1000 });
    return token;
  };
  /** A refresh + access token pair for `email`, as if an OAuth round trip had happened. */
  g.grant = (email, { expiresInSeconds = g.lifetimeSeconds } = {}) => {
    const refresh = `1//${randomBytes(16).toString('hex')}`;
    g.refreshTokens.set(refresh, { email, revoked: false });
    return { access_token: issueAccess(email, expiresInSeconds), refresh_token: refresh, expires_at: String(Math.floor(Date.now() / 1000) + expiresInSeconds) };
  };
  /** A JWT whose payload is `claims` (signature not checked: it comes straight from the token endpoint). */
  const idToken = (claims) => [{ alg: 'RS256', typ: 'JWT' }, claims, 'signature'].map((p, i) => (i < 2 ? Buffer.from(JSON.stringify(p)).toString('base64url') : 'c2ln')).join('.');
  const oauthError = (error, description, status = 400) => ({ status, json: { error, error_description: description } });

  // The consent page a browser is sent to: the fake consents as `g.consentEmail` (set by the
  // test) to every scope asked for, and sends the browser back with a code and the state.
  fake.on('GET', '/accounts/o/oauth2/v2/auth', (req) => {
    const back = new URL(req.query.get('redirect_uri'));
    if (!g.consentEmail) back.searchParams.set('error', 'access_denied');
    else {
      back.searchParams.set('code', g.issueCode({
        email: g.consentEmail, name: g.consentName, challenge: req.query.get('code_challenge') ?? undefined,
        redirectUri: req.query.get('redirect_uri'), scope: req.query.get('scope') ?? '',
      }));
    }
    back.searchParams.set('state', req.query.get('state') ?? '');
    return { status: 302, headers: { location: back.toString() } };
  });

  fake.on('POST', '/token', async (req) => {
    const p = req.form ?? {};
    if (p.client_id !== GOOGLE_CLIENT_ID || p.client_secret !== GOOGLE_CLIENT_SECRET) return oauthError('invalid_client', 'The OAuth client was not found.', 401);
    if (p.grant_type === 'authorization_code') {
      const c = g.codes.get(p.code);
      g.codes.delete(p.code);
      if (!c) return oauthError('invalid_grant', 'Malformed auth code.');
      if (c.redirectUri && c.redirectUri !== p.redirect_uri) return oauthError('redirect_uri_mismatch', 'Bad Request');
      if (c.challenge && createHash('sha256').update(p.code_verifier ?? '').digest('base64url') !== c.challenge) return oauthError('invalid_grant', 'Invalid code verifier.');
      const pair = g.grant(c.email);
      const claims = { iss: 'https://accounts.google.com', aud: GOOGLE_CLIENT_ID, sub: `sub-${c.email}`, email: c.email, email_verified: c.verified, name: c.name, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 };
      return { json: { access_token: pair.access_token, expires_in: g.lifetimeSeconds, refresh_token: pair.refresh_token, scope: c.scope, token_type: 'Bearer', ...(c.scope.includes('openid') ? { id_token: idToken(claims) } : {}) } };
    }
    if (p.grant_type === 'refresh_token') {
      g.refreshes++;
      if (g.refreshDelayMs) await new Promise((r) => setTimeout(r, g.refreshDelayMs));
      const r = g.refreshTokens.get(p.refresh_token);
      if (!r || r.revoked) return oauthError('invalid_grant', 'Token has been expired or revoked.');
      // Google keeps the refresh token and sends none back.
      return { json: { access_token: issueAccess(r.email, g.lifetimeSeconds), expires_in: g.lifetimeSeconds, scope: 'https://www.googleapis.com/auth/gmail.modify', token_type: 'Bearer' } };
    }
    return oauthError('unsupported_grant_type', `Invalid grant_type: ${p.grant_type}`);
  });

  // Revocation (RFC 7009 as Google speaks it): a refresh or access token; the grant goes with it.
  fake.on('POST', '/revoke', (req) => {
    const token = req.form?.token ?? req.query.get('token') ?? '';
    const refresh = g.refreshTokens.get(token);
    const access = g.accessTokens.get(token);
    const email = (refresh && !refresh.revoked ? refresh.email : undefined) ?? access?.email;
    g.revocations.push({ token, known: Boolean(email) });
    if (!email) return oauthError('invalid_token', 'Token expired or revoked');
    g.revoke(email);
    return { json: {} };
  });

  // Batch: each part is an HTTP request answered by the fake's own routes.
  fake.on('POST', /^\/batch\/(gmail\/v1|calendar\/v3)$/, async (req) => {
    const boundary = /boundary=([^;]+)/.exec(req.headers['content-type'] ?? '')?.[1];
    if (!boundary) return g.error(400, 'batch without a boundary');
    const parts = req.raw.toString().split(`--${boundary}`).slice(1).filter((p) => !p.startsWith('--'));
    if (parts.length > 100) return g.error(400, 'Too many requests in batch (max 100)');
    g.batches = (g.batches ?? 0) + 1;
    (g.batchSizes ??= []).push(parts.length);
    const out = `batch_${randomBytes(6).toString('hex')}`;
    let body = '';
    for (const [i, part] of parts.entries()) {
      const [head, http] = part.replace(/^\r?\n/, '').split(/\r?\n\r?\n(.*)/s);
      const id = /Content-ID:\s*<([^>]+)>/i.exec(head)?.[1] ?? '';
      const [reqHead, inner = ''] = http.split(/\r?\n\r?\n(.*)/s);
      const [method, target] = reqHead.split(/\r?\n/)[0].split(' ');
      const url = new URL(target, fake.url);
      let json;
      try { json = inner.trim() ? JSON.parse(inner.trim()) : undefined; } catch {}
      const record = { method, path: url.pathname, query: url.searchParams, headers: { ...req.headers, 'content-type': 'application/json' }, raw: Buffer.from(inner.trim()), json };
      fake.requests.push({ ...record, batched: true });
      // A batch's parts run concurrently at Google: past 50 of them, parts are refused with 429
      // (why Google advises batches of at most 50).
      const r = i >= 50 ? { status: 429, json: { error: { code: 429, message: 'Too many concurrent requests for user.', errors: [{ reason: 'rateLimitExceeded', message: 'Too many concurrent requests for user.' }] } } } : await fake.dispatch(record);
      const status = r.status ?? 200;
      const payload = r.json !== undefined ? JSON.stringify(r.json) : (r.body ?? '');
      body += `--${out}\r\nContent-Type: application/http\r\nContent-ID: <response-${id}>\r\n\r\nHTTP/1.1 ${status} ${status === 200 ? 'OK' : 'Error'}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${payload}\r\n`;
    }
    body += `--${out}--\r\n`;
    return { headers: { 'content-type': `multipart/mixed; boundary=${out}` }, body };
  });

  return g;
}
