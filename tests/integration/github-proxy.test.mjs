// The /api/repos proxy against a fake GitHub (pagination, encoding, validation, PRs, rate
// limits, upstream failures) and org repository administration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';

test('GitHub proxy and org repositories', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, { upstreams: { github: gh.api, githubWeb: gh.web } });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const admin = await svc.createUser({ email: 'admin@example.com', admin: true });
  const pat = 'ghp_alice_token_abcdefghijklmnop0123';
  knownSecrets.add(pat);
  gh.addUser(pat, { id: 1, login: 'alice' });
  assert.equal((await svc.request('PUT', '/api/me/github-token', { token: alice.token, body: { token: pat } })).status, 200);
  for (let i = 0; i < 5; i++) gh.addRepo(`alice/repo-${i}`);
  gh.addRepo('octo/socket.io', { permissions: { push: false, pull: true } });
  gh.addRepo('octo/archive', { archived: true, permissions: { push: false } });
  const get = (path) => svc.request('GET', path, { token: alice.token });

  await t.test('repos are paginated through the Link header', async () => {
    const p1 = await get('/api/repos?perPage=3');
    assert.equal(p1.status, 200);
    assert.equal(p1.body.repos.length, 3);
    assert.deepEqual([p1.body.page, p1.body.perPage, p1.body.hasMore, p1.body.nextPage], [1, 3, true, 2]);
    assert.deepEqual(Object.keys(p1.body.repos[0]).sort(), ['cloneUrl', 'defaultBranch', 'description', 'fullName', 'id', 'language', 'name', 'private', 'updatedAt', 'url']);
    const p3 = await get('/api/repos?perPage=3&page=3');
    assert.equal(p3.body.hasMore, false);
    assert.equal(p3.body.repos.length, 1);
    const sent = gh.fake.requests.filter((r) => r.path === '/api/user/repos').at(-1);
    assert.equal(sent.query.get('type'), 'all');
    assert.equal(sent.headers.authorization, `Bearer ${pat}`);
    assert.equal(sent.headers.accept, 'application/vnd.github+json');
    for (const bad of ['perPage=0', 'perPage=101', 'page=0', 'page=x', 'sort=stars']) {
      assert.equal((await get(`/api/repos?${bad}`)).status, 400, bad);
    }
  });

  await t.test('validate: URL forms, dotted names, push access with a reason', async () => {
    for (const url of ['https://github.com/octo/socket.io', 'https://github.com/octo/socket.io.git', 'git@github.com:octo/socket.io.git', 'octo/socket.io']) {
      const r = await get(`/api/repos/validate?url=${encodeURIComponent(url)}`);
      assert.equal(r.body.valid, true, url);
      assert.equal(r.body.repo.fullName, 'octo/socket.io');
      assert.equal(r.body.repo.canPush, false);
      assert.match(r.body.pushDeniedReason, /read-only/);
    }
    const archived = await get('/api/repos/validate?url=octo/archive');
    assert.equal(archived.body.pushDeniedReason, 'The repository is archived');
    const pushable = await get('/api/repos/validate?url=alice/repo-1');
    assert.equal(pushable.body.repo.canPush, true);
    assert.equal(pushable.body.pushDeniedReason, undefined);
    for (const url of ['https://evil.example/x?u=https://github.com/octo/socket.io', 'https://gitlab.com/octo/x', 'nope']) {
      assert.deepEqual((await get(`/api/repos/validate?url=${encodeURIComponent(url)}`)).body, { valid: false, error: 'Not a valid GitHub repository URL' });
    }
    assert.deepEqual((await get('/api/repos/validate?url=octo/missing')).body, { valid: false, error: 'Repository not found or not accessible' });
    assert.equal((await get('/api/repos/validate')).status, 400);
  });

  await t.test('pulls and issues: dotted names, encoded paths, PRs excluded from issues', async () => {
    gh.pulls.set('octo/socket.io', [{
      number: 5, title: 'Fix', state: 'open', draft: true, body: 'b', html_url: 'https://github.com/octo/socket.io/pull/5', updated_at: 'u',
      user: { login: 'bob', avatar_url: 'av' }, head: { ref: 'fix', sha: 's', repo: { full_name: 'bob/socket.io', clone_url: 'c', owner: { login: 'bob' } } }, base: { ref: 'main' },
    }]);
    gh.issues.set('octo/socket.io', [
      { number: 1, title: 'Bug', body: null, html_url: 'h', updated_at: 'u', user: { login: 'x', avatar_url: 'y' }, labels: [{ name: 'bug', color: 'f00' }], assignees: [] },
      { number: 5, title: 'Fix', pull_request: { url: 'p' }, user: {}, labels: [], assignees: [] },
    ]);
    const pulls = await get('/api/repos/octo/socket.io/pulls');
    assert.equal(pulls.status, 200);
    assert.deepEqual(pulls.body.pulls.map((p) => [p.number, p.draft, p.headRef, p.repoFullName, p.author.login]), [[5, true, 'fix', 'bob/socket.io', 'bob']]);
    const issues = await get('/api/repos/octo/socket.io/issues');
    assert.deepEqual(issues.body.issues.map((i) => [i.number, i.labels[0]?.name]), [[1, 'bug']]);
    const q = gh.fake.requests.filter((r) => r.path.endsWith('/issues')).at(-1);
    assert.equal(q.query.get('state'), 'open');
    assert.equal((await get('/api/repos/octo/bad%20name/pulls')).status, 400);
    assert.equal((await get('/api/repos/octo/missing/pulls')).status, 502);
  });

  await t.test('create PR: default base detected; an existing PR for the head is returned', async () => {
    const create = (body, repo = 'https://github.com/octo/socket.io') => svc.request('POST', `/api/repos/pull-request?repo=${encodeURIComponent(repo)}`, { token: alice.token, body });
    const r = await create({ branch: 'feature/x', title: 'Add x', body: 'Body' });
    assert.equal(r.status, 200);
    assert.equal(r.body.existing, false);
    assert.equal(r.body.pr.state, 'open');
    const sent = gh.fake.requests.filter((x) => x.method === 'POST' && x.path.endsWith('/pulls')).at(-1);
    assert.deepEqual(sent.json, { title: 'Add x', body: 'Body', head: 'feature/x', base: 'main' });
    const again = await create({ branch: 'feature/x', title: 'Add x again' });
    assert.equal(again.status, 200);
    assert.equal(again.body.existing, true);
    assert.equal(again.body.pr.number, r.body.pr.number);
    const withBase = await create({ branch: 'feature/y', title: 'Y', base: 'develop' });
    assert.equal(gh.fake.requests.filter((x) => x.method === 'POST').at(-1).json.base, 'develop');
    assert.equal(withBase.status, 200);
    assert.equal((await create({ branch: '', title: 'x' })).status, 400);
    assert.equal((await create({ branch: 'b', title: 'x' }, 'https://evil.example/?https://github.com/a/b')).status, 400);
    assert.equal((await svc.request('POST', '/api/repos/pull-request', { token: alice.token, body: { branch: 'b', title: 't' } })).status, 400);
  });

  await t.test('create PR with sessionId links it as the session\'s own PR; only the caller\'s live sessions', async () => {
    const create = (body, token = alice.token) => svc.request('POST', `/api/repos/pull-request?repo=${encodeURIComponent('https://github.com/octo/socket.io')}`, { token, body });
    const session = (await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'w', repoUrl: 'octo/socket.io', branch: 'feature/linked' } })).body.session;
    const before = gh.fake.requests.length;
    const other = await svc.createUser({ email: 'mallory-pr@example.com' });
    // Someone else's session, an unknown one and a malformed id: refused before GitHub is called.
    assert.equal((await create({ branch: 'feature/linked', title: 'T', sessionId: session.id }, other.token)).status, 404);
    assert.equal((await create({ branch: 'feature/linked', title: 'T', sessionId: randomUUID() })).status, 404);
    const bad = await create({ branch: 'feature/linked', title: 'T', sessionId: '../stop' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'VALIDATION_ERROR');
    assert.equal(gh.fake.requests.length, before, 'nothing sent to GitHub');
    const r = await create({ branch: 'feature/linked', title: 'Linked PR', sessionId: session.id });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const gs = (await svc.request('GET', `/api/sessions/${session.id}/git-state`, { token: alice.token })).body.gitState;
    assert.equal(gs.prNumber, r.body.pr.number);
    assert.equal(gs.prState, 'open');
    assert.equal(gs.prTitle, 'Linked PR');
    assert.equal(gs.prUrl, r.body.pr.url);
  });

  await t.test('rate limits become 429 RATE_LIMITED with retryAfter; other failures 502', async () => {
    const reset = Math.floor(Date.now() / 1000) + 120;
    gh.fake.fault('/api/user/repos', { status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) }, json: { message: 'API rate limit exceeded' } });
    const primary = await get('/api/repos');
    assert.equal(primary.status, 429);
    assert.equal(primary.body.code, 'RATE_LIMITED');
    assert.ok(primary.body.details.retryAfter >= 100 && primary.body.details.retryAfter <= 122, String(primary.body.details.retryAfter));
    assert.equal(primary.headers.get('retry-after'), String(primary.body.details.retryAfter));
    gh.fake.fault('/api/user/repos', { status: 403, json: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' } });
    assert.equal((await get('/api/repos')).body.details.retryAfter, 60);
    gh.fake.fault('/api/user/repos', { status: 429, headers: { 'retry-after': '5' }, json: { message: 'slow' } });
    assert.equal((await get('/api/repos')).body.details.retryAfter, 5);
    gh.fake.fault('/api/user/repos', { status: 500, json: { message: 'oops' } });
    const failed = await get('/api/repos');
    assert.equal(failed.status, 502);
    assert.equal(failed.body.code, 'UPSTREAM_ERROR');
    assert.match(failed.body.error, /^Failed to fetch repositories/);
    gh.fake.fault('/api/user/repos', { malformed: true });
    assert.equal((await get('/api/repos')).status, 502);
    gh.fake.fault('/api/user/repos', { drop: true });
    assert.equal((await get('/api/repos')).status, 502);
  });

  await t.test('org repositories: admin CRUD, duplicates, personas, disabled ones', async () => {
    const as = (method, path, body) => svc.request(method, path, { token: admin.token, body });
    assert.equal((await svc.request('POST', '/api/admin/repos', { token: alice.token, body: { fullName: 'o/r' } })).status, 403);
    const created = await as('POST', '/api/admin/repos', { fullName: 'Acme/Web.App', description: 'Site', topics: ['web'] });
    assert.equal(created.status, 201);
    assert.deepEqual([created.body.owner, created.body.name, created.body.defaultBranch, created.body.enabled, created.body.topics], ['Acme', 'Web.App', 'main', true, ['web']]);
    assert.match(created.body.createdAt, /Z$/);
    const dup = await as('POST', '/api/admin/repos', { fullName: 'acme/web.app' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.code, 'ORG_REPO_EXISTS');
    assert.equal((await as('POST', '/api/admin/repos', { fullName: 'noslash' })).status, 400);
    const other = await as('POST', '/api/admin/repos', { fullName: 'acme/api' });
    const upd = await as('PUT', `/api/admin/repos/${other.body.id}`, { enabled: false, description: '' });
    assert.equal(upd.status, 200);
    assert.equal(upd.body.repo.enabled, false);
    assert.equal((await as('PUT', '/api/admin/repos/nope', { enabled: true })).status, 404);
    // Members see enabled repos only; admins see all.
    assert.deepEqual((await get('/api/repos/org')).body.repos.map((r) => r.fullName), ['Acme/Web.App']);
    assert.deepEqual((await as('GET', '/api/admin/repos')).body.repos.map((r) => [r.fullName, r.enabled]), [['acme/api', false], ['Acme/Web.App', true]]);
    // Persona defaults must reference a shared persona.
    const shared = await as('POST', '/api/admin/personas', { name: 'Code Reviewer' });
    assert.equal(shared.status, 201);
    assert.equal(shared.body.slug, 'code-reviewer');
    const priv = await as('POST', '/api/admin/personas', { name: 'Mine', visibility: 'private' });
    assert.equal((await as('POST', '/api/admin/personas', { name: 'Code Reviewer' })).status, 409);
    const missing = await as('PUT', `/api/admin/repos/${created.body.id}/persona-default`, { personaId: 'nope' });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'PERSONA_NOT_FOUND');
    assert.equal((await as('PUT', `/api/admin/repos/${created.body.id}/persona-default`, { personaId: priv.body.id })).status, 400);
    assert.deepEqual((await as('PUT', `/api/admin/repos/${created.body.id}/persona-default`, { personaId: shared.body.id })).body, { ok: true });
    const listed = (await get('/api/repos/org')).body.repos[0];
    assert.deepEqual([listed.personaId, listed.personaName], [shared.body.id, 'Code Reviewer']);
    assert.deepEqual((await as('DELETE', `/api/admin/repos/${created.body.id}/persona-default`)).body, { ok: true });
    assert.equal((await as('DELETE', `/api/admin/repos/${created.body.id}/persona-default`)).status, 404);
    assert.deepEqual((await as('DELETE', `/api/admin/repos/${created.body.id}`)).body, { ok: true });
    assert.equal((await as('DELETE', `/api/admin/repos/${created.body.id}`)).status, 404);
    assert.equal((await as('GET', '/api/admin/personas')).body.personas.length, 2);
    assert.deepEqual((await as('DELETE', `/api/admin/personas/${priv.body.id}`)).body, { ok: true });
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
