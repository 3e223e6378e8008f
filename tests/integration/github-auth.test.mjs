// Sign-in with GitHub (state single use, browser-bound, every error redirect) and PAT connect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';

const FRONTEND = 'https://app.example.com';

test('GitHub sign-in and token connection', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret', PUBLIC_URL: 'https://svc.example.com' },
  });
  let db = await svc.db();
  const octoToken = 'gho_octocat_token_0123456789abcdef';
  knownSecrets.add(octoToken);
  gh.addUser(octoToken, { id: 583231, login: 'octocat', name: 'The Octocat', email: null, emails: [
    { email: 'unverified@example.com', primary: false, verified: false },
    { email: 'Octo@Example.com', primary: true, verified: true },
  ] });

  // Starts the flow like a browser: returns {state, cookie}.
  async function begin() {
    const r = await svc.request('GET', '/auth/github');
    assert.equal(r.status, 302);
    const loc = new URL(r.headers.get('location'));
    assert.equal(`${loc.origin}${loc.pathname}`, `${gh.web}/login/oauth/authorize`);
    assert.equal(loc.searchParams.get('client_id'), 'gh-client-id');
    assert.equal(loc.searchParams.get('redirect_uri'), 'https://svc.example.com/auth/github/callback');
    assert.equal(loc.searchParams.get('scope'), 'repo read:user user:email');
    assert.equal(loc.searchParams.get('code_challenge_method'), 'S256');
    const cookie = r.headers.get('set-cookie').split(';')[0];
    assert.match(r.headers.get('set-cookie'), /HttpOnly/);
    return { state: loc.searchParams.get('state'), cookie, challenge: loc.searchParams.get('code_challenge') };
  }
  /** GitHub issues a code for `token` bound to the flow's PKCE challenge. */
  const issue = (code, token, flow) => gh.codes.set(code, { token, challenge: flow.challenge });
  /** Follows a successful callback: the one-time code in the fragment, exchanged for a session. */
  async function signedIn(r) {
    assert.equal(r.status, 302);
    const loc = r.headers.get('location');
    assert.ok(loc.startsWith(`${FRONTEND}/auth/callback#code=`), loc);
    assert.ok(!loc.includes('?'), 'nothing in a query string');
    const params = new URLSearchParams(loc.split('#')[1]);
    assert.equal(params.get('provider'), 'github');
    const ex = await svc.request('POST', '/auth/exchange', { body: { code: params.get('code') } });
    assert.equal(ex.status, 200, JSON.stringify(ex.body));
    knownSecrets.add(ex.body.token);
    svc.shownOnce(ex.body.token);
    return ex.body;
  }
  const callback = (query, cookie) => svc.request('GET', `/auth/github/callback?${new URLSearchParams(query)}`, { headers: cookie ? { cookie } : {} });
  const errorOf = (r) => {
    assert.equal(r.status, 302);
    const loc = new URL(r.headers.get('location'));
    assert.equal(`${loc.origin}${loc.pathname}`, `${FRONTEND}/login`);
    return loc.searchParams.get('error');
  };
  let sessionToken;

  await t.test('success: user created as first admin, token sealed, a one-time code in the fragment', async () => {
    const flow = await begin();
    issue('code-1', octoToken, flow);
    const done = await signedIn(await callback({ code: 'code-1', state: flow.state }, flow.cookie));
    sessionToken = done.token;
    assert.equal(done.user.role, 'admin');
    const me = await svc.request('GET', '/api/me', { token: sessionToken });
    assert.equal(me.status, 200);
    assert.deepEqual([me.body.user.email, me.body.user.name, me.body.user.role], ['octo@example.com', 'The Octocat', 'admin']);
    const row = await db.prepare("SELECT encrypted_access_token, scopes FROM oauth_tokens WHERE provider = 'github'").first();
    assert.match(row.encrypted_access_token, /^enc:v1:/);
    assert.ok(!row.encrypted_access_token.includes(octoToken));
    assert.equal(row.scopes, 'repo,read:user,user:email');
    const u = await db.prepare('SELECT github_id, github_username FROM users WHERE email = ?').bind('octo@example.com').first();
    assert.deepEqual(u, { github_id: '583231', github_username: 'octocat' });
    // The stored token works for the proxy.
    gh.addRepo('octocat/hello.world');
    const repos = await svc.request('GET', '/api/repos', { token: sessionToken });
    assert.equal(repos.status, 200);
    assert.equal(repos.body.repos[0].fullName, 'octocat/hello.world');
  });

  await t.test('signing in again finds the same user (by GitHub id); later users need an invite', async () => {
    const flow = await begin();
    issue('code-2', octoToken, flow);
    await signedIn(await callback({ code: 'code-2', state: flow.state }, flow.cookie));
    const { n } = await db.prepare('SELECT COUNT(*) AS n FROM users').first();
    assert.equal(n, 1);
    const other = 'gho_second_user_token_000000000000';
    knownSecrets.add(other);
    gh.addUser(other, { id: 99, login: 'hubot', name: 'Hubot', email: 'hubot@example.com' });
    const s2 = await begin();
    issue('code-3', other, s2);
    assert.equal(errorOf(await callback({ code: 'code-3', state: s2.state }, s2.cookie)), 'not_allowed', 'only the first user signs up unasked');
    const inv = await svc.request('POST', '/api/admin/invites', { token: sessionToken, body: { email: 'hubot@example.com' } });
    assert.equal(inv.status, 201);
    svc.shownOnce(inv.body.invite.code);
    const s3 = await begin();
    issue('code-3b', other, s3);
    const done = await signedIn(await callback({ code: 'code-3b', state: s3.state }, s3.cookie));
    assert.equal(done.user.role, 'member');
  });

  await t.test('every failure redirects with its code; a state works once', async () => {
    const a = await begin();
    issue('code-a', octoToken, a);
    assert.equal(errorOf(await callback({ code: 'code-a' }, a.cookie)), 'missing_params');
    assert.equal(errorOf(await callback({ code: 'code-a', state: 'forged' }, a.cookie)), 'invalid_state');
    assert.equal(errorOf(await callback({ code: 'code-a', state: a.state })), 'invalid_state', 'no browser cookie');
    // That attempt consumed the state: even with the right cookie it is gone now.
    assert.equal(errorOf(await callback({ code: 'code-a', state: a.state }, a.cookie)), 'invalid_state');
    const b = await begin();
    assert.equal(errorOf(await callback({ code: 'wrong-code', state: b.state }, b.cookie)), 'token_exchange_failed');
    const c = await begin();
    issue('code-c', octoToken, c);
    gh.fake.fault('/api/user', { status: 500, json: { message: 'boom' } });
    assert.equal(errorOf(await callback({ code: 'code-c', state: c.state }, c.cookie)), 'github_profile_failed');
    const noEmail = 'gho_no_email_user_0000000000000000';
    gh.addUser(noEmail, { id: 7, login: 'ghost', email: null, emails: [{ email: 'g@example.com', primary: true, verified: false }] });
    const d = await begin();
    issue('code-d', noEmail, d);
    assert.equal(errorOf(await callback({ code: 'code-d', state: d.state }, d.cookie)), 'no_email');
    assert.equal(errorOf(await callback({ error: 'access_denied', state: 'x' })), 'access_denied');
    // Expired states are refused.
    const e = await begin();
    await db.prepare("UPDATE oauth_states SET expires_at = '2000-01-01T00:00:00.000Z'").run();
    issue('code-e', octoToken, e);
    // A code exchanged without the flow's PKCE verifier is refused by GitHub.
    const f = await begin();
    gh.codes.set('code-f', { token: octoToken, challenge: 'not-this-flows-challenge' });
    assert.equal(errorOf(await callback({ code: 'code-f', state: f.state }, f.cookie)), 'token_exchange_failed');
    assert.equal(errorOf(await callback({ code: 'code-e', state: e.state }, e.cookie)), 'invalid_state');
  });

  await t.test('allow-list: new users outside it are refused, existing users still sign in', async () => {
    await svc.reconfigure({ ALLOWED_EMAIL_DOMAINS: 'corp.example' });
    db = await svc.db(); // stubs die with the old runtime
    const stranger = 'gho_stranger_token_0000000000000000';
    gh.addUser(stranger, { id: 4242, login: 'stranger', email: 'stranger@elsewhere.org' });
    const s = await begin();
    issue('code-s', stranger, s);
    assert.equal(errorOf(await callback({ code: 'code-s', state: s.state }, s.cookie)), 'not_allowed');
    const { n } = await db.prepare("SELECT COUNT(*) AS n FROM users WHERE email = 'stranger@elsewhere.org'").first();
    assert.equal(n, 0);
    const o = await begin();
    issue('code-o', octoToken, o);
    await signedIn(await callback({ code: 'code-o', state: o.state }, o.cookie));
    await svc.reconfigure({ ALLOWED_EMAIL_DOMAINS: undefined });
    db = await svc.db();
  });

  await t.test('PUT/DELETE /api/me/github-token connects a checked personal access token', async () => {
    const cli = await svc.createUser({ email: 'cli@example.com' });
    const pat = 'ghp_personal_access_token_0123456789';
    knownSecrets.add(pat);
    gh.addUser(pat, { id: 31337, login: 'cli-user', email: 'cli@example.com', scopes: 'repo, workflow' });
    const bad = await svc.request('PUT', '/api/me/github-token', { token: cli.token, body: { token: 'ghp_not_a_valid_token_xxxxxxxx' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'INVALID_TOKEN');
    assert.equal((await svc.request('GET', '/api/repos', { token: cli.token })).body.error, 'GitHub account not connected');
    const r = await svc.request('PUT', '/api/me/github-token', { token: cli.token, body: { token: pat } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { connected: true, login: 'cli-user', scopes: ['repo', 'workflow'] });
    assert.equal((await svc.request('GET', '/api/repos', { token: cli.token })).status, 200);
    const u = await db.prepare('SELECT github_id FROM users WHERE id = ?').bind(cli.userId).first();
    assert.equal(u.github_id, '31337');
    assert.deepEqual((await svc.request('DELETE', '/api/me/github-token', { token: cli.token })).body, { connected: false });
    assert.equal((await svc.request('DELETE', '/api/me/github-token', { token: cli.token })).status, 404);
    assert.equal((await svc.request('GET', '/api/repos', { token: cli.token })).status, 400);
  });

  await t.test('without a client id the flow says it is not configured', async () => {
    await svc.reconfigure({ GITHUB_CLIENT_ID: undefined });
    const r = await svc.request('GET', '/auth/github');
    assert.equal(r.status, 503);
    assert.equal(r.body.code, 'OAUTH_NOT_CONFIGURED');
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
