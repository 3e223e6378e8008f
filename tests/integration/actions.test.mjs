// The actions API (contract §9) against the fake GitHub: listing with JSON Schemas, invoking
// with validation details, the error codes (ACTION_NOT_FOUND, INTEGRATION_NOT_ACTIVE,
// RECONNECT_REQUIRED, RATE_LIMITED, UPSTREAM_ERROR), org-scope write rules; and integration
// credentials under a key of their own (never colliding with /api/me/credentials/:service).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';

test('actions and integration credentials', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, { upstreams: { github: gh.api, githubWeb: gh.web } });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const admin = await svc.createUser({ email: 'root@example.com', admin: true });
  const TOKEN = 'gho_actions_token_0123456789abcdefgh';
  const ADMIN_TOKEN = 'gho_actions_admin_token_0123456789ab';
  for (const [tok, id, login] of [[TOKEN, 5, 'alice'], [ADMIN_TOKEN, 6, 'root']]) {
    knownSecrets.add(tok);
    gh.addUser(tok, { id, login });
  }
  gh.addRepo('alice/app.js');
  gh.addIssues('alice/app.js', 3);
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });
  const connect = async (user, token) => {
    const r = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: token }, config: { syncFrequency: 'manual' } }, user);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.integration;
  };
  const integ = await connect(alice, TOKEN);
  const act = (name, params, user = alice, id = integ.id) => api('POST', `/api/integrations/${id}/actions/${name}`, params, user);

  await t.test('the registry lists actions with JSON Schemas', async () => {
    const avail = (await api('GET', '/api/integrations/available')).body.services.find((s) => s.service === 'github');
    assert.deepEqual(avail.actions, ['get_repository', 'get_issue', 'get_pull_request', 'create_issue', 'comment']);
    assert.equal(avail.oauth, true);
    const list = await api('GET', `/api/integrations/${integ.id}/actions`);
    assert.equal(list.status, 200);
    const create = list.body.actions.find((a) => a.name === 'create_issue');
    assert.equal(create.params.type, 'object');
    assert.deepEqual(create.params.required, ['repository', 'title']);
    assert.equal(create.params.additionalProperties, false);
    assert.ok(create.description.length > 10);
    assert.equal((await api('GET', `/api/integrations/${integ.id}/actions`, undefined, bob)).status, 404);
  });

  await t.test('invoking: results in the contract\'s shapes; created entities are stored', async () => {
    const repo = await act('get_repository', { repository: 'alice/app.js' });
    assert.equal(repo.status, 200, JSON.stringify(repo.body));
    assert.equal(repo.body.result.full_name, 'alice/app.js');
    const issue = await act('get_issue', { repository: 'alice/app.js', number: 2 });
    assert.deepEqual([issue.body.result.id, issue.body.result.title], ['alice/app.js#2', 'Issue 2']);
    const created = await act('create_issue', { repository: 'alice/app.js', title: 'From an agent', body: 'Details', labels: ['bug'] });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.deepEqual(Object.keys(created.body.result).sort(), ['number', 'state', 'title', 'url']);
    assert.deepEqual([created.body.result.title, created.body.result.state], ['From an agent', 'open']);
    const sent = gh.fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/issues')).at(-1);
    assert.deepEqual(sent.json.labels, ['bug']);
    const stored = await api('GET', `/api/integrations/${integ.id}/entities/issues?limit=100`);
    assert.ok(stored.body.entities.some((e) => e.id === `alice/app.js#${created.body.result.number}`));
    const comment = await act('comment', { repository: 'alice/app.js', number: created.body.result.number, body: 'Working on it' });
    assert.equal(comment.status, 200);
    assert.deepEqual(Object.keys(comment.body.result).sort(), ['id', 'url']);
    assert.equal(gh.comments.at(-1).body, 'Working on it');
  });

  await t.test('parameters are validated against the schema, every problem reported', async () => {
    const r = await act('create_issue', { repository: 42, title: '', labels: 'bug', color: 'red' });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'VALIDATION_ERROR');
    const fields = r.body.details.map((d) => d.field).sort();
    assert.deepEqual(fields, ['color', 'labels', 'repository', 'title']);
    assert.equal((await act('get_issue', { repository: 'alice/app.js' })).body.details[0].field, 'number');
    assert.equal((await act('get_issue', { repository: 'alice/app.js', number: 0 })).status, 400);
    const notJson = await svc.request('POST', `/api/integrations/${integ.id}/actions/get_issue`, { token: alice.token, raw: '{oops', headers: { 'content-type': 'application/json' } });
    assert.equal(notJson.body.code, 'INVALID_JSON');
    const unknown = await act('delete_everything', {});
    assert.deepEqual([unknown.status, unknown.body.code], [404, 'ACTION_NOT_FOUND']);
    assert.equal(gh.fake.requests.filter((q) => q.method === 'POST').length, 2, 'nothing reached GitHub');
  });

  await t.test('upstream failures: 404, rate limits with Retry-After, 5xx with the status in details', async () => {
    const missing = await act('get_issue', { repository: 'alice/app.js', number: 999 });
    assert.equal(missing.status, 404);
    gh.fake.fault(/\/issues\/1$/, { status: 429, headers: { 'retry-after': '7' }, json: { message: 'slow down' } });
    const limited = await act('get_issue', { repository: 'alice/app.js', number: 1 });
    assert.deepEqual([limited.status, limited.body.code, limited.headers.get('retry-after')], [429, 'RATE_LIMITED', '7']);
    gh.fake.fault(/\/issues\/1$/, { status: 503, json: { message: 'unavailable' } });
    const down = await act('get_issue', { repository: 'alice/app.js', number: 1 });
    assert.deepEqual([down.status, down.body.code, down.body.details.status], [502, 'UPSTREAM_ERROR', 503]);
    assert.equal((await api('GET', `/api/integrations/${integ.id}`)).body.integration.status, 'active');
  });

  await t.test('refused credentials: RECONNECT_REQUIRED, the integration in error until reactivated', async () => {
    gh.fake.fault(/\/issues\/1$/, { status: 401, json: { message: 'Bad credentials' } });
    const r = await act('get_issue', { repository: 'alice/app.js', number: 1 });
    assert.deepEqual([r.status, r.body.code], [409, 'RECONNECT_REQUIRED']);
    const i = (await api('GET', `/api/integrations/${integ.id}`)).body.integration;
    assert.equal(i.status, 'error');
    assert.match(i.errorMessage, /reconnect/);
    const again = await act('get_repository', { repository: 'alice/app.js' });
    assert.deepEqual([again.status, again.body.code], [409, 'RECONNECT_REQUIRED']);
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { status: 'active' })).body.integration.status, 'active');
    assert.equal((await act('get_repository', { repository: 'alice/app.js' })).status, 200);
    const db = await svc.db();
    await db.prepare("UPDATE integrations SET status = 'disconnected' WHERE id = ?").bind(integ.id).run();
    const off = await act('get_repository', { repository: 'alice/app.js' });
    assert.deepEqual([off.status, off.body.code], [409, 'INTEGRATION_NOT_ACTIVE']);
    await db.prepare("UPDATE integrations SET status = 'active' WHERE id = ?").bind(integ.id).run();
  });

  await t.test('org scope: members read through an admin\'s integration; writes are the owner\'s', async () => {
    const shared = await connect(admin, ADMIN_TOKEN);
    assert.equal((await api('PATCH', `/api/integrations/${shared.id}`, { scope: 'org' }, admin)).status, 200);
    assert.equal((await act('get_issue', { repository: 'alice/app.js', number: 1 }, bob, shared.id)).status, 200);
    const write = await act('create_issue', { repository: 'alice/app.js', title: 'x' }, bob, shared.id);
    assert.equal(write.status, 404);
    assert.equal((await api('POST', `/api/integrations/${shared.id}/push`, { entityType: 'issues', data: { repository: 'alice/app.js', title: 'x' } }, bob)).status, 404);
    assert.equal((await act('create_issue', { repository: 'alice/app.js', title: 'by the owner' }, admin, shared.id)).status, 200);
  });

  await t.test('the user\'s own credential of the same name never touches the integration\'s', async () => {
    const put = await api('PUT', '/api/me/credentials/github', { credentials: { token: 'my-personal-note-token' } });
    assert.equal(put.status, 200);
    assert.equal((await act('get_repository', { repository: 'alice/app.js' })).status, 200, 'the integration still works');
    const mine = (await api('GET', '/api/me/credentials')).body.credentials.map((c) => c.service);
    assert.deepEqual(mine, ['github'], 'integration keys are not listed as the user\'s');
    assert.equal((await api('DELETE', '/api/me/credentials/github')).status, 200);
    assert.equal((await act('get_repository', { repository: 'alice/app.js' })).status, 200);
    // And deleting the integration leaves the user's own credential alone.
    assert.equal((await api('PUT', '/api/me/credentials/github', { credentials: { token: 'mine-again' } })).status, 200);
    const other = await connect(bob, TOKEN);
    assert.equal((await api('PUT', '/api/me/credentials/github', { credentials: { token: 'bobs-own' } }, bob)).status, 200);
    assert.equal((await api('DELETE', `/api/integrations/${other.id}`, undefined, bob)).status, 200);
    const keys = await svc.apiKeys(bob.userId);
    assert.equal((await keys('retrieve', { userId: bob.userId, service: 'github' })).body.credentials.token, 'bobs-own');
    assert.equal((await keys('retrieve', { userId: bob.userId, service: `integration:${other.id}` })).status, 404);
  });

  await t.test('an integration from before the move finds its credentials and takes them to its own key', async () => {
    const carol = await svc.createUser({ email: 'carol@example.com' });
    const keys = await svc.apiKeys(carol.userId);
    assert.equal((await keys('store', { userId: carol.userId, service: 'github', credentials: { access_token: TOKEN } })).status, 200);
    const db = await svc.db();
    const id = '11111111-2222-4333-8444-555555555555';
    await db.prepare("INSERT INTO integrations (id, user_id, service, config, status, credentials_legacy) VALUES (?, ?, 'github', '{}', 'active', 1)").bind(id, carol.userId).run();
    const r = await svc.request('POST', `/api/integrations/${id}/actions/get_repository`, { token: carol.token, body: { repository: 'alice/app.js' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await keys('retrieve', { userId: carol.userId, service: `integration:${id}` })).body.credentials.access_token, TOKEN);
    assert.equal((await db.prepare('SELECT credentials_legacy AS l FROM integrations WHERE id = ?').bind(id).first()).l, 0);
    assert.equal((await keys('retrieve', { userId: carol.userId, service: 'github' })).status, 200, 'the bare entry is left to its user');
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
