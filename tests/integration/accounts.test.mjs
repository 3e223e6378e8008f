// Accounts and access (contract §10): every row of the sign-up gating order (first user, invite
// by code / by email / expired / reused / email-bound, org domain gating and allow-list, the
// environment's allow-lists, verified emails only), Google sign-in, the one-time code handoff,
// sessions out (list, revoke, logout), API token default expiry, rate limits, key strength, the
// re-seal job over legacy ciphertexts, CORS with and without FRONTEND_URL, and the console as the
// frontend when FRONTEND_URL is unset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startService, knownSecrets, TEST_KEY } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { startFakeGoogle } from '../lib/fake-google.mjs';

const FRONTEND = 'https://app.example.com';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('accounts and access', async (t) => {
  const gh = await startFakeGitHub(t);
  const g = await startFakeGoogle(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret', ...g.vars(), TEST_LIMIT_PERIOD: '10' },
  });
  let tokenNo = 0;
  /** A GitHub account the fake knows: returns its access token. */
  const account = (email, { verified = true, id = 1000 + tokenNo } = {}) => {
    const token = `gho_accounts_${String(++tokenNo).padStart(4, '0')}_0123456789abcdefgh`;
    knownSecrets.add(token);
    gh.addUser(token, { id, login: `user${tokenNo}`, name: `User ${tokenNo}`, email: null, emails: [{ email, primary: true, verified }] });
    return token;
  };
  /** The whole GitHub sign-in as a browser does it; answers the error code or the exchanged session. */
  async function signIn(token, { invite, provider = 'github', google } = {}) {
    const start = await svc.request('GET', `/auth/${provider}${invite ? `?invite_code=${invite}` : ''}`);
    assert.equal(start.status, 302, JSON.stringify(start.body));
    const loc = new URL(start.headers.get('location'));
    const cookie = start.headers.get('set-cookie').split(';')[0];
    const state = loc.searchParams.get('state');
    const challenge = loc.searchParams.get('code_challenge');
    let code;
    if (provider === 'github') {
      code = `code-${tokenNo}-${Math.random()}`;
      gh.codes.set(code, { token, challenge });
    } else {
      code = g.issueCode({ ...google, challenge, redirectUri: loc.searchParams.get('redirect_uri'), scope: loc.searchParams.get('scope') });
    }
    const cb = await svc.request('GET', `/auth/${provider}/callback?${new URLSearchParams({ code, state })}`, { headers: { cookie } });
    assert.equal(cb.status, 302);
    const to = new URL(cb.headers.get('location'));
    if (to.pathname === '/login') return { error: to.searchParams.get('error') };
    const params = new URLSearchParams(to.hash.slice(1));
    assert.equal(params.get('provider'), provider);
    const ex = await svc.request('POST', '/auth/exchange', { body: { code: params.get('code') } });
    assert.equal(ex.status, 200, JSON.stringify(ex.body));
    knownSecrets.add(ex.body.token);
    svc.shownOnce(ex.body.token);
    return { ...ex.body, code: params.get('code') };
  }
  let admin;
  let adminGh;
  const asAdmin = (method, path, body) => svc.request(method, path, { token: admin.token, body });
  const invite = async (body = {}) => {
    const r = await asAdmin('POST', '/api/admin/invites', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    svc.shownOnce(r.body.invite.code);
    return r.body.invite;
  };

  await t.test('a fresh deployment: the very first user signs up and is admin; nobody else unasked', async () => {
    assert.deepEqual(await signIn(account('first@example.com', { verified: false })), { error: 'no_email' }, 'unverified emails do not count');
    adminGh = account('first@example.com');
    admin = await signIn(adminGh);
    assert.equal(admin.user.role, 'admin');
    assert.deepEqual(await signIn(account('second@example.com')), { error: 'not_allowed' });
    // Signing in again finds the same account.
    assert.equal((await signIn(adminGh)).user.id, admin.user.id);
  });

  await t.test('invites: by code, bound to an email, open for an email, expired, reused', async () => {
    const open = await invite({ role: 'admin' });
    assert.match(open.code, /^inv_/);
    const listed = await asAdmin('GET', '/api/admin/invites');
    assert.ok(!listed.text.includes(open.code), 'codes are not listed');
    const byCode = await signIn(account('coded@example.com'), { invite: open.code });
    assert.equal(byCode.user.role, 'admin', 'the invite\'s role');
    assert.deepEqual(await signIn(account('reuse@example.com'), { invite: open.code }), { error: 'not_allowed' }, 'an invite works once');
    const bound = await invite({ email: 'bound@example.com' });
    assert.deepEqual(await signIn(account('someone-else@example.com'), { invite: bound.code }), { error: 'not_allowed' }, 'bound to another email');
    const forEmail = await signIn(account('bound@example.com'));
    assert.equal(forEmail.user.role, 'member', 'an open invite for the email, no code needed');
    const stale = await invite({ email: 'late@example.com' });
    const db = await svc.db();
    await db.prepare("UPDATE invites SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?").bind(stale.id).run();
    assert.deepEqual(await signIn(account('late@example.com')), { error: 'not_allowed' }, 'expired');
    assert.equal((await asAdmin('DELETE', `/api/admin/invites/${stale.id}`)).status, 200);
    assert.equal((await asAdmin('DELETE', `/api/admin/invites/${stale.id}`)).status, 404);
    const member = await signIn(account('member@example.com'), { invite: (await invite()).code });
    assert.equal((await svc.request('POST', '/api/admin/invites', { token: member.token, body: {} })).status, 403);
  });

  await t.test('org settings: domain gating and the email allow-list; an existing account links by verified email', async () => {
    assert.deepEqual((await asAdmin('GET', '/api/admin/org-settings')).body, { name: 'My Organization', domainGatingEnabled: false, allowedDomains: [], emailAllowlistEnabled: false, allowedEmails: [] });
    const put = await asAdmin('PUT', '/api/admin/org-settings', { domainGatingEnabled: true, allowedDomains: ['Corp.Example'], emailAllowlistEnabled: true, allowedEmails: ['guest@outside.org'] });
    assert.deepEqual(put.body, { name: 'My Organization', domainGatingEnabled: true, allowedDomains: ['corp.example'], emailAllowlistEnabled: true, allowedEmails: ['guest@outside.org'] });
    assert.equal((await asAdmin('PUT', '/api/admin/org-settings', { allowedDomains: ['not a domain'] })).status, 400);
    assert.equal((await signIn(account('dev@corp.example'))).user.role, 'member');
    assert.ok((await signIn(account('guest@outside.org'))).token);
    assert.deepEqual(await signIn(account('intruder@outside.org')), { error: 'not_allowed' });
    assert.deepEqual(await signIn(account('dev@sub.corp.example')), { error: 'not_allowed' }, 'exact domains');
    // A user created some other way (npm run user:create) is linked by a verified email.
    const cli = await svc.createUser({ email: 'cli@elsewhere.io' });
    assert.equal((await signIn(account('cli@elsewhere.io'))).user.id, cli.userId);
    await asAdmin('PUT', '/api/admin/org-settings', { domainGatingEnabled: false, emailAllowlistEnabled: false });
    assert.deepEqual(await signIn(account('dev2@corp.example')), { error: 'not_allowed' }, 'gating off again: invite needed');
  });

  await t.test('the environment\'s allow-lists', async () => {
    await svc.reconfigure({ ALLOWED_EMAIL_DOMAINS: 'env.example', ALLOWED_EMAILS: 'one@else.org' });
    assert.ok((await signIn(account('a@env.example'))).token);
    assert.ok((await signIn(account('one@else.org'))).token);
    assert.deepEqual(await signIn(account('two@else.org')), { error: 'not_allowed' });
    await svc.reconfigure({ ALLOWED_EMAIL_DOMAINS: undefined, ALLOWED_EMAILS: undefined });
  });

  await t.test('Google sign-in: verified email from the ID token, the Google token sealed with its refresh token', async () => {
    const inv = await invite({ email: 'ana@gmail.example' });
    assert.deepEqual(await signIn(null, { provider: 'google', google: { email: 'ana@gmail.example', verified: false } }), { error: 'no_email' });
    const ana = await signIn(null, { provider: 'google', google: { email: 'ana@gmail.example', name: 'Ana' } });
    assert.deepEqual([ana.user.email, ana.user.name, ana.user.role], ['ana@gmail.example', 'Ana', 'member']);
    const db = await svc.db();
    const row = await db.prepare("SELECT encrypted_access_token, encrypted_refresh_token, expires_at FROM oauth_tokens WHERE provider = 'google' AND user_id = ?").bind(ana.user.id).first();
    assert.match(row.encrypted_access_token, /^enc:v1:/);
    assert.match(row.encrypted_refresh_token, /^enc:v1:/);
    assert.match(row.expires_at, /Z$/);
    assert.equal((await db.prepare('SELECT used_at FROM invites WHERE id = ?').bind(inv.id).first()).used_at !== null, true);
    // Signing in again (a new Google login) finds her by her Google id.
    assert.equal((await signIn(null, { provider: 'google', google: { email: 'ana@gmail.example' } })).user.id, ana.user.id);
  });

  await t.test('the one-time code: reuse, expiry, wrong provider', async () => {
    const first = await signIn(adminGh);
    const reuse = await svc.request('POST', '/auth/exchange', { body: { code: first.code } });
    assert.deepEqual([reuse.status, reuse.body.code], [400, 'INVALID_CODE']);
    // A code for GitHub, presented as Google's; then an expired one.
    const db = await svc.db();
    const { createHash, randomBytes } = await import('node:crypto');
    const plant = async (code, provider, expires) => db.prepare('INSERT INTO signin_codes (code_hash, user_id, provider, expires_at, created_at) VALUES (?, ?, ?, ?, ?)')
      .bind(createHash('sha256').update(code).digest('hex'), admin.user.id, provider, expires, new Date().toISOString()).run();
    const c1 = randomBytes(16).toString('hex');
    await plant(c1, 'github', new Date(Date.now() + 60000).toISOString());
    assert.equal((await svc.request('POST', '/auth/exchange', { body: { code: c1, provider: 'google' } })).status, 400);
    const c2 = randomBytes(16).toString('hex');
    await plant(c2, 'github', new Date(Date.now() - 1000).toISOString());
    assert.equal((await svc.request('POST', '/auth/exchange', { body: { code: c2 } })).status, 400, 'expired');
    assert.equal((await svc.request('POST', '/auth/exchange', { body: {} })).status, 400);
  });

  await t.test('sessions out: list, revoke one, log out; API tokens from a session expire in 90 days', async () => {
    const other = await signIn(adminGh);
    const list = await asAdmin('GET', '/api/me/sessions');
    assert.ok(list.body.sessions.length >= 2);
    assert.equal(list.body.sessions.filter((s) => s.current).length, 1);
    const current = list.body.sessions.find((s) => s.current);
    assert.deepEqual([current.provider, typeof current.expiresAt], ['github', 'string']);
    const otherId = (await svc.request('GET', '/api/me/sessions', { token: other.token })).body.sessions.find((s) => s.current).id;
    assert.notEqual(otherId, current.id);
    // Tokens: 90 days from a session by default; only admins may ask for none.
    const made = await svc.request('POST', '/api/api-tokens', { token: other.token, body: { name: 'from-session' } });
    svc.shownOnce(made.body.token);
    const days = (Date.parse(made.body.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 89.9 && days < 90.1, `${days} days`);
    const forever = await svc.request('POST', '/api/api-tokens', { token: other.token, body: { name: 'forever', expiresAt: null } });
    svc.shownOnce(forever.body.token);
    assert.equal(forever.body.expiresAt, undefined, 'an admin may');
    const member = await signIn(account('token-member@corp.example'), { invite: (await invite()).code });
    const refused = await svc.request('POST', '/api/api-tokens', { token: member.token, body: { name: 'forever', expiresAt: null } });
    assert.deepEqual([refused.status, refused.body.details[0].field], [400, 'expiresAt']);
    const apiToken = made.body.token;
    const fromApi = await svc.request('POST', '/api/api-tokens', { token: apiToken, body: { name: 'from-api-token' } });
    svc.shownOnce(fromApi.body.token);
    assert.equal(fromApi.body.expiresAt, made.body.expiresAt, 'a token made by an expiring token ends with it');
    // Revoke another session: its token stops working at once; API tokens it made stay.
    assert.deepEqual((await asAdmin('DELETE', `/api/me/sessions/${otherId}`)).body, { success: true });
    assert.equal((await svc.request('GET', '/api/me', { token: other.token })).status, 401, 'the revoked session');
    assert.equal((await asAdmin('GET', '/api/me')).status, 200, 'the caller\'s own session is untouched');
    assert.equal((await svc.request('DELETE', `/api/me/sessions/${current.id}`, { token: member.token })).status, 404, 'another user\'s session');
    assert.equal((await svc.request('GET', '/api/me', { token: apiToken })).status, 200, 'API tokens are revoked on their own');
    assert.equal((await asAdmin('DELETE', `/api/me/sessions/${otherId}`)).status, 404);
    // Logging out revokes the calling session.
    const m2 = await signIn(account('token-member@corp.example'));
    assert.deepEqual((await svc.request('POST', '/auth/logout', { token: m2.token })).body, { success: true });
    assert.equal((await svc.request('GET', '/api/me', { token: m2.token })).status, 401);
    assert.equal((await svc.request('POST', '/auth/logout', { token: apiToken })).body.code, 'NOT_A_SESSION');
  });

  await t.test('rate limits: failed authentications per IP, sign-in starts per IP; then recovery', async () => {
    await svc.reconfigure({ TEST_LIMIT_AUTH_FAILURE_LIMITER: '3', TEST_LIMIT_SIGNIN_LIMITER: '2' });
    const ip = { 'cf-connecting-ip': '203.0.113.9' };
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await svc.request('GET', '/api/me', { token: `wrong-${i}`, headers: ip })).status);
    assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    const limited = await svc.request('GET', '/api/me', { token: admin.token, headers: ip });
    assert.deepEqual([limited.status, limited.body.code, limited.headers.get('retry-after')], [429, 'RATE_LIMITED', '10'], 'this address is cooling down');
    assert.equal((await svc.request('GET', '/api/me', { token: admin.token, headers: { 'cf-connecting-ip': '198.51.100.2' } })).status, 200, 'others are not');
    assert.equal((await svc.request('GET', '/api/me', { headers: ip })).status, 401, 'no token: not counted, not blocked');
    const starts = [];
    for (let i = 0; i < 3; i++) starts.push((await svc.request('GET', '/auth/github', { headers: ip })).status);
    assert.deepEqual(starts, [302, 302, 429]);
    await sleep(11_000);
    assert.equal((await svc.request('GET', '/api/me', { token: admin.token, headers: ip })).status, 200, 'recovered');
    assert.equal((await svc.request('GET', '/auth/github', { headers: ip })).status, 302);
    await svc.reconfigure({ TEST_LIMIT_AUTH_FAILURE_LIMITER: undefined, TEST_LIMIT_SIGNIN_LIMITER: undefined });
  });

  await t.test('CORS: local development origins only without a production FRONTEND_URL', async () => {
    const preflight = (origin) => svc.request('OPTIONS', '/api/me', { headers: { origin, 'access-control-request-method': 'GET' } });
    assert.equal((await preflight(FRONTEND)).headers.get('access-control-allow-origin'), FRONTEND);
    assert.equal((await preflight('http://localhost:5173')).headers.get('access-control-allow-origin'), null);
    await svc.reconfigure({ FRONTEND_URL: undefined });
    assert.equal((await preflight('http://localhost:5173')).headers.get('access-control-allow-origin'), 'http://localhost:5173');
    // Without FRONTEND_URL the console this worker serves is the frontend (contract §15): at
    // the request's origin locally, at PUBLIC_URL when it is set.
    const local = await svc.request('GET', '/auth/github');
    assert.equal(local.status, 302);
    const back = await svc.request('GET', '/auth/github/callback?error=access_denied');
    assert.equal(back.headers.get('location'), `${svc.url}/login?error=access_denied`);
    await svc.reconfigure({ FRONTEND_URL: undefined, PUBLIC_URL: 'https://svc.example.com' });
    assert.equal((await svc.request('GET', '/auth/github')).status, 302);
    const r = await svc.request('GET', '/auth/github/callback?error=access_denied');
    assert.equal(r.headers.get('location'), 'https://svc.example.com/login?error=access_denied');
    await svc.reconfigure({ FRONTEND_URL: FRONTEND, PUBLIC_URL: undefined });
  });

  await t.test('a key of fewer than 256 bits is refused with a way out', async () => {
    await svc.reconfigure({ ENCRYPTION_KEY: 'short-but-set-key' });
    const r = await asAdmin('PUT', '/api/me/credentials/x', { credentials: { a: 'b' } });
    assert.deepEqual([r.status, r.body.code], [503, 'ENCRYPTION_KEY_TOO_WEAK']);
    assert.match(r.body.error, /openssl rand -base64 32/);
    await svc.reconfigure({ ENCRYPTION_KEY: TEST_KEY });
  });

  await t.test('the re-seal job moves legacy and previous-key values to the current key', async () => {
    const fixtures = JSON.parse(readFileSync(new URL('../fixtures/legacy-ciphertexts.json', import.meta.url), 'utf8')).cases;
    const legacy = fixtures.find((c) => c.format === 'd1' && c.encryptionKey === 'short-key');
    knownSecrets.add(legacy.plaintext);
    const db = await svc.db();
    // A row as the original worker left it: its format, the original's (short) key.
    await db.prepare(`INSERT INTO oauth_tokens (id, user_id, provider, encrypted_access_token, scopes) VALUES ('legacy-1', ?, 'github', ?, 'repo')
                      ON CONFLICT(user_id, provider) DO UPDATE SET encrypted_access_token = excluded.encrypted_access_token`)
      .bind(admin.user.id, legacy.ciphertext).run();
    gh.addUser(legacy.plaintext, { id: 77, login: 'legacy', email: 'legacy@example.com' });
    await asAdmin('PUT', '/api/me/credentials/llm', { credentials: { api_key: 'sk-sealed-under-the-test-key' } });
    knownSecrets.add('sk-sealed-under-the-test-key');
    const run = async () => {
      const started = await asAdmin('POST', '/api/admin/maintenance/reseal');
      assert.equal(started.status, 202, JSON.stringify(started.body));
      for (let i = 0; i < 200; i++) {
        const s = (await asAdmin('GET', '/api/admin/maintenance/reseal')).body.job;
        if (s.status !== 'running') return s;
        await sleep(50);
      }
      throw new Error('re-seal stuck');
    };
    await svc.reconfigure({ ENCRYPTION_KEY_PREVIOUS: 'short-key' });
    const first = await run();
    assert.equal(first.status, 'completed');
    assert.ok(first.resealed >= 1, JSON.stringify(first));
    const row = await (await svc.db()).prepare("SELECT encrypted_access_token AS v FROM oauth_tokens WHERE user_id = ? AND provider = 'github'").bind(admin.user.id).first();
    assert.match(row.v, /^enc:v1:/);
    // Rotate: everything under the test key is now previous-key material.
    const NEXT = 'Mq5Vn2Bc8Zt4Rw1Ks7Hd9Jf3Gp6Ye0Ui5Oa2Pl8Xq1L';
    await svc.reconfigure({ ENCRYPTION_KEY: NEXT, ENCRYPTION_KEY_PREVIOUS: TEST_KEY });
    const second = await run();
    assert.equal(second.status, 'completed');
    assert.ok(second.resealed >= 2, JSON.stringify(second));
    // Without the previous key, and with legacy reading off, everything still opens.
    await svc.reconfigure({ ENCRYPTION_KEY: NEXT, ENCRYPTION_KEY_PREVIOUS: undefined, LEGACY_CIPHERTEXT: 'reject' });
    assert.equal((await asAdmin('GET', '/api/repos')).status, 200, 'the GitHub token opens');
    const keys = await svc.apiKeys(admin.user.id);
    assert.equal((await keys('retrieve', { userId: admin.user.id, service: 'llm' })).status, 200);
    // A value still in the original's format is now refused.
    await (await svc.db()).prepare("UPDATE oauth_tokens SET encrypted_access_token = ? WHERE user_id = ? AND provider = 'github'").bind(legacy.ciphertext, admin.user.id).run();
    assert.equal((await asAdmin('GET', '/api/repos')).status, 500);
    await svc.reconfigure({ ENCRYPTION_KEY: TEST_KEY, LEGACY_CIPHERTEXT: undefined });
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
