// What the console needs from the worker, over HTTP: its pages answered with the console's
// HTML and CSP (the assets with theirs, from `_headers`), the API's JSON answers unchanged
// next to them, the sign-in providers it offers, and an integration's run history
// (`GET /api/integrations/:id/syncs`: newest first, keyset pages, owner only, bad input 400).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('the console over HTTP, and the sync run history', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, { console: true, upstreams: { github: gh.api, githubWeb: gh.web }, vars: { FRONTEND_URL: undefined } });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const TOKEN = 'gho_console_history_token_0123456789';
  knownSecrets.add(TOKEN);
  gh.addUser(TOKEN, { id: 7, login: 'alice' });
  gh.addRepo('alice/app');
  gh.addIssues('alice/app', 3);
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });

  await t.test('the console\'s pages are its HTML with the CSP; the API around them is unchanged', async () => {
    for (const path of ['/', '/login', '/auth/callback', '/slack/link', '/settings/slack', '/console', '/console/integrations/x']) {
      const r = await svc.request('GET', path);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type'), /^text\/html/, path);
      assert.match(r.text, /<script type="module" src="\/assets\/main-[\w-]+\.js"><\/script>/, path);
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'self'/, path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
    }
    const html = (await svc.request('GET', '/login')).text;
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)[1];
    const js = await svc.request('GET', script);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type'), /javascript/);
    assert.match(js.headers.get('cache-control'), /immutable/, 'hashed names are cached for good');
    assert.match(js.headers.get('content-security-policy'), /default-src 'self'/);
    assert.equal((await svc.request('HEAD', '/login')).status, 200);
    // Not console pages: the API's own answers.
    const missing = await svc.request('GET', '/api/nope');
    assert.deepEqual([missing.status, missing.body.code], [404, 'NOT_FOUND']);
    assert.deepEqual([(await svc.request('GET', '/consoles')).status, (await svc.request('POST', '/login')).status], [404, 404]);
    assert.equal((await svc.request('GET', '/auth/github')).status, 503, 'sign-in without credentials is still refused');
  });

  await t.test('the sign-in providers: only those with credentials', async () => {
    assert.deepEqual((await svc.request('GET', '/auth/providers')).body, { providers: [] });
    await svc.reconfigure({ FRONTEND_URL: undefined, GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret', GOOGLE_CLIENT_ID: 'only-an-id' });
    assert.deepEqual((await svc.request('GET', '/auth/providers')).body, { providers: ['github'] });
    // Without FRONTEND_URL, a sign-in ends on this console.
    const start = await svc.request('GET', '/auth/github');
    assert.equal(start.status, 302);
    const back = await svc.request('GET', '/auth/github/callback?error=access_denied');
    assert.equal(back.headers.get('location'), `${svc.url}/login?error=access_denied`);
  });

  await t.test('GET /api/integrations/:id/syncs: the run log, newest first, a page at a time', async () => {
    const created = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: TOKEN }, config: { syncFrequency: 'manual' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.integration.id;
    const empty = await api('GET', `/api/integrations/${id}/syncs`);
    assert.deepEqual(empty.body, { syncs: [], hasMore: false });
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const s = await api('POST', `/api/integrations/${id}/sync`, i === 1 ? { fullSync: true } : {});
      assert.equal(s.status, 202, JSON.stringify(s.body));
      ids.push(s.body.syncId);
      for (let n = 0; ; n++) {
        const r = await api('GET', `/api/integrations/${id}/sync/${s.body.syncId}`);
        if (['completed', 'failed'].includes(r.body.status)) break;
        assert.ok(n < 400, `sync stuck: ${JSON.stringify(r.body)}`);
        await sleep(50);
      }
    }
    const first = await api('GET', `/api/integrations/${id}/syncs?limit=2`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.syncs.map((s) => s.id), [ids[2], ids[1]]);
    assert.equal(first.body.hasMore, true);
    assert.equal(typeof first.body.cursor, 'string');
    // Each run as its status route shows it.
    const one = await api('GET', `/api/integrations/${id}/sync/${ids[1]}`);
    assert.deepEqual(first.body.syncs[1], one.body);
    assert.equal(one.body.fullSync, true);
    assert.equal(one.body.status, 'completed');
    const second = await api('GET', `/api/integrations/${id}/syncs?limit=2&cursor=${first.body.cursor}`);
    assert.deepEqual(second.body.syncs.map((s) => s.id), [ids[0]]);
    assert.equal(second.body.hasMore, false);
    assert.equal(second.body.cursor, undefined);
    // Another user's integration answers like a missing one; bad input is a 400.
    assert.equal((await api('GET', `/api/integrations/${id}/syncs`, undefined, bob)).status, 404);
    assert.equal((await api('GET', '/api/integrations/00000000-0000-4000-8000-000000000000/syncs')).status, 404);
    for (const q of ['limit=0', 'limit=101', 'limit=x', 'cursor=%%%', 'cursor=bm90LWEtY3Vyc29y']) {
      const r = await api('GET', `/api/integrations/${id}/syncs?${q}`);
      assert.deepEqual([r.status, r.body.code], [400, 'VALIDATION_ERROR'], q);
    }
    assert.equal((await svc.request('GET', `/api/integrations/${id}/syncs`)).status, 401);
  });

  await t.test('no secret in any answer or log', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
