// The integration framework with the GitHub integration against the fake GitHub: configure,
// OAuth, full/incremental syncs with exact counts, deletions, faults, budget resumption, rate
// limits, concurrency, cron, webhooks, fetch/push, org scope.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HOOK_SECRET = 'integration-webhook-secret-000';

test('integration framework and GitHub sync', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { SYNC_REQUEST_BUDGET: '1000', GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret', GITHUB_WEBHOOK_SECRET: HOOK_SECRET },
  });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const admin = await svc.createUser({ email: 'root@example.com', admin: true });
  const TOKEN = 'gho_integration_token_abcdef0123456789';
  knownSecrets.add(TOKEN);
  gh.addUser(TOKEN, { id: 5, login: 'alice' });
  gh.addRepo('alice/app');
  gh.addRepo('alice/lib.js');
  gh.addRepo('alice/empty');
  gh.addIssues('alice/app', 250);
  gh.addIssues('alice/lib.js', 20);
  gh.issues.get('alice/app').push({ ...gh.makeIssue('alice/app', 251), pull_request: { url: 'x' } }); // a PR in the issues list
  gh.pulls.set('alice/app', Array.from({ length: 5 }, (_, i) => ({
    number: 300 + i, title: `PR ${i}`, state: 'open', draft: false, html_url: 'h', updated_at: gh.tick(), created_at: 'c',
    user: { login: 'alice' }, head: { ref: `b${i}`, repo: { full_name: 'alice/app', owner: { login: 'alice' } } }, base: { ref: 'main' },
  })));
  gh.addCommits('alice/app', 120);
  gh.addCommits('alice/lib.js', 3);
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });
  const count = async (id, type, extra = '') => {
    let n = 0;
    let cursor;
    do {
      const r = await api('GET', `/api/integrations/${id}/entities/${type}?limit=100${cursor ? `&cursor=${cursor}` : ''}${extra}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      n += r.body.entities.length;
      cursor = r.body.hasMore ? r.body.cursor : undefined;
    } while (cursor);
    return n;
  };
  const waitSync = async (id, syncId, { until = ['completed', 'failed'], timeout = 20000 } = {}) => {
    const t0 = Date.now();
    for (;;) {
      const r = await api('GET', `/api/integrations/${id}/sync/${syncId}`);
      if (until.includes(r.body.status)) return r.body;
      if (Date.now() - t0 > timeout) throw new Error(`sync stuck: ${JSON.stringify(r.body)}`);
      await sleep(50);
    }
  };
  const tick = async () => (await svc.mf.getWorker()).scheduled({ cron: '* * * * *' });
  let integ;

  await t.test('configure: validation, unsupported services, bad credentials, duplicates', async () => {
    const bad = [
      {}, { service: 'myspace', credentials: { a: 'b' }, config: {} }, { service: 'github', credentials: {}, config: {} },
      { service: 'github', credentials: { access_token: 'x' }, config: { syncFrequency: 'weekly' } },
      { service: 'github', credentials: { access_token: 'x' }, config: { entities: ['wikis'] } },
    ];
    for (const body of bad) assert.equal((await api('POST', '/api/integrations', body)).status, 400, JSON.stringify(body));
    const notion = await api('POST', '/api/integrations', { service: 'notion', credentials: { token: 'x' }, config: {} });
    assert.deepEqual([notion.status, notion.body.code], [400, 'UNSUPPORTED_INTEGRATION']);
    const wrong = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: 'gho_wrong' }, config: {} });
    assert.deepEqual([wrong.status, wrong.body.code], [400, 'INTEGRATION_AUTH_FAILED']);
    const r = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: TOKEN }, config: { syncFrequency: 'manual' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    integ = r.body.integration;
    assert.deepEqual([integ.status, integ.config.syncFrequency, integ.config.entities, integ.scope], ['active', 'manual', [], 'user']);
    assert.ok(!r.text.includes(TOKEN));
    const dup = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: TOKEN }, config: {} });
    assert.deepEqual([dup.status, dup.body.code], [409, 'INTEGRATION_ALREADY_EXISTS']);
    const avail = await api('GET', '/api/integrations/available');
    assert.deepEqual(avail.body.services[0].supportedEntities, ['repositories', 'issues', 'pull_requests', 'commits']);
    assert.equal((await api('GET', `/api/integrations/${integ.id}`, undefined, bob)).status, 404);
    assert.deepEqual((await api('GET', '/api/integrations', undefined, bob)).body.integrations, []);
  });

  await t.test('a full sync persists every entity with exact counts', async () => {
    const r = await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true });
    assert.equal(r.status, 202);
    const done = await waitSync(integ.id, r.body.syncId);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.result.success, true);
    assert.equal(await count(integ.id, 'repositories'), 3);
    assert.equal(await count(integ.id, 'issues'), 270);
    assert.equal(await count(integ.id, 'pull_requests'), 5);
    assert.equal(await count(integ.id, 'commits'), 123);
    assert.equal(done.progress, 3 + 270 + 5 + 123);
    const one = await api('GET', `/api/integrations/${integ.id}/entities/issues?limit=1`);
    assert.equal(one.body.entities[0].id, 'alice/app#1');
    assert.equal(one.body.entities[0].title, 'Issue 1');
    assert.equal(one.body.entities[0]._sync.deleted, false);
    assert.match((await api('GET', `/api/integrations/${integ.id}`)).body.integration.lastSyncedAt, /Z$/);
  });

  await t.test('an incremental sync fetches only what changed; a full sync marks deletions', async () => {
    const before = gh.fake.requests.length;
    const issues = gh.issues.get('alice/app');
    issues[10].title = 'Changed title';
    issues[10].updated_at = gh.tick();
    gh.addIssues('alice/lib.js', 1);
    const r = await api('POST', `/api/integrations/${integ.id}/sync`, {});
    const done = await waitSync(integ.id, r.body.syncId);
    assert.equal(done.status, 'completed');
    assert.ok(done.progress >= 2 && done.progress < 20, `incremental progress ${done.progress}`);
    assert.ok(gh.fake.requests.length - before < 12, 'few requests');
    assert.equal(await count(integ.id, 'issues'), 271);
    const changed = await api('GET', `/api/integrations/${integ.id}/entities/issues?limit=100&modifiedAfter=2026-10-01T00:00:00Z`);
    assert.ok(changed.body.entities.some((e) => e.title === 'Changed title'));
    // Remove an issue upstream; a full run marks it deleted instead of dropping it silently.
    gh.issues.set('alice/lib.js', gh.issues.get('alice/lib.js').filter((i) => i.number !== 3));
    const full = await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true, entities: ['issues'] });
    assert.equal((await waitSync(integ.id, full.body.syncId)).status, 'completed');
    assert.equal(await count(integ.id, 'issues'), 271);
    assert.equal(await count(integ.id, 'issues', '&includeDeleted=false'), 270);
    const deleted = (await api('GET', `/api/integrations/${integ.id}/entities/issues?limit=100&cursor=${Buffer.from('alice/lib.js#2').toString('base64url')}`)).body.entities.find((e) => e.id === 'alice/lib.js#3');
    assert.equal(deleted._sync.deleted, true);
  });

  await t.test('transient faults are retried with backoff; a permanent one fails the run with its reason', async () => {
    gh.fake.fault(/\/issues$/, { status: 502, json: { message: 'Server Error' } }, 1);
    const r = await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true, entities: ['issues'] });
    const retried = await waitSync(integ.id, r.body.syncId);
    assert.equal(retried.status, 'completed', JSON.stringify(retried));
    assert.ok(retried.invocations >= 2, 'the failed slice was retried');
    assert.equal(await count(integ.id, 'issues', '&includeDeleted=false'), 270, 'nothing half-deleted or duplicated');
    gh.fake.fault(/\/issues$/, { malformed: true }, 1);
    assert.equal((await waitSync(integ.id, (await api('POST', `/api/integrations/${integ.id}/sync`, { entities: ['issues'] })).body.syncId)).status, 'completed');
    gh.fake.fault(/\/issues$/, { status: 422, json: { message: 'Validation Failed' } }, 1);
    const failed = await waitSync(integ.id, (await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true, entities: ['issues'] })).body.syncId);
    assert.equal(failed.status, 'failed');
    assert.match(failed.result.errors[0].message, /issues: GitHub refused the request: Validation Failed/);
    assert.equal((await api('GET', `/api/integrations/${integ.id}`)).body.integration.status, 'active');
    assert.equal(await count(integ.id, 'issues', '&includeDeleted=false'), 270);
  });

  await t.test('concurrent sync requests: one runs, the other is 409', async () => {
    const [a, b] = await Promise.all([api('POST', `/api/integrations/${integ.id}/sync`, {}), api('POST', `/api/integrations/${integ.id}/sync`, {})]);
    assert.deepEqual([a.status, b.status].sort(), [202, 409]);
    const winner = a.status === 202 ? a : b;
    assert.equal((a.status === 409 ? a : b).body.code, 'SYNC_IN_PROGRESS');
    await waitSync(integ.id, winner.body.syncId);
  });

  await t.test('a run larger than the subrequest budget completes through several queue consumers', async () => {
    await svc.reconfigure({ SYNC_REQUEST_BUDGET: '12' });
    const r = await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true });
    const s = await waitSync(integ.id, r.body.syncId);
    assert.equal(s.status, 'completed', JSON.stringify(s));
    assert.ok(s.invocations > 5, `${s.invocations} invocations`);
    assert.equal(s.progress, 3 + 270 + 5 + 123);
    assert.equal(await count(integ.id, 'issues', '&includeDeleted=false'), 270);
    assert.equal(await count(integ.id, 'commits'), 123);
    await svc.reconfigure({ SYNC_REQUEST_BUDGET: '1000' });
  });

  await t.test('a rate limit defers the run to a delayed continuation at the reset', async () => {
    const reset = Math.floor(Date.now() / 1000) + 2;
    gh.fake.fault(/\/commits$/, { status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) }, json: { message: 'API rate limit exceeded' } });
    const r = await api('POST', `/api/integrations/${integ.id}/sync`, { entities: ['commits'], fullSync: true });
    let deferred;
    for (let i = 0; i < 100 && !deferred?.resumeAt; i++) {
      deferred = (await api('GET', `/api/integrations/${integ.id}/sync/${r.body.syncId}`)).body;
      if (!deferred.resumeAt) await sleep(20);
    }
    assert.equal(deferred.status, 'running', JSON.stringify(deferred));
    assert.ok(Date.parse(deferred.resumeAt) >= (reset - 1) * 1000);
    const done = await waitSync(integ.id, r.body.syncId);
    assert.equal(done.status, 'completed');
    assert.ok(Date.parse(done.completedAt) >= (reset - 1) * 1000, 'not before the reset');
  });

  await t.test('cron: hourly integrations are enqueued on schedule; stuck runs are failed', async () => {
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'hourly', entities: ['repositories'] } })).status, 200);
    let db = await svc.db();
    await db.prepare("UPDATE sync_logs SET started_at = '2026-01-01T00:00:00.000Z' WHERE integration_id = ?").bind(integ.id).run();
    await db.prepare("UPDATE integrations SET last_full_sync_at = '2026-01-01T00:00:00.000Z' WHERE id = ?").bind(integ.id).run();
    const before = (await db.prepare('SELECT COUNT(*) AS n FROM sync_logs WHERE integration_id = ?').bind(integ.id).first()).n;
    await tick();
    const logs = (await db.prepare('SELECT id, status, full_sync FROM sync_logs WHERE integration_id = ? ORDER BY started_at DESC').bind(integ.id).all()).results;
    assert.equal(logs.length, before + 1);
    assert.equal((await waitSync(integ.id, logs[0].id)).status, 'completed');
    assert.equal(logs[0].full_sync, 1, 'the first scheduled run of the day is a full one');
    await tick();
    assert.equal((await db.prepare('SELECT COUNT(*) AS n FROM sync_logs WHERE integration_id = ?').bind(integ.id).first()).n, before + 1, 'not due again within the hour');
    await db.prepare("UPDATE sync_logs SET started_at = '2026-01-01T00:00:00.000Z' WHERE integration_id = ?").bind(integ.id).run();
    await tick();
    const next = (await db.prepare('SELECT id, full_sync FROM sync_logs WHERE integration_id = ? ORDER BY started_at DESC').bind(integ.id).first());
    assert.equal(next.full_sync, 0, 'later runs of the day are incremental');
    assert.equal((await waitSync(integ.id, next.id)).status, 'completed');
    await db.prepare("INSERT INTO sync_logs (id, integration_id, status, state, started_at, heartbeat_at) VALUES ('stuck-run', ?, 'running', '{}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')").bind(integ.id).run();
    await tick();
    const stuck = (await api('GET', `/api/integrations/${integ.id}/sync/stuck-run`)).body;
    assert.equal(stuck.status, 'failed');
    assert.equal(stuck.result.errors[0].code, 'SYNC_TIMEOUT');
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual', entities: [] } })).status, 200);
    db = undefined;
  });

  await t.test('a GitHub webhook updates a stored issue', async () => {
    const repo = gh.repos.get('alice/app');
    const raw = JSON.stringify({ action: 'edited', repository: { id: repo.id, full_name: 'alice/app' }, issue: { ...gh.issues.get('alice/app')[4], title: 'Edited on GitHub', updated_at: gh.tick() } });
    const r = await svc.request('POST', '/webhooks/github', {
      raw, headers: { 'x-github-event': 'issues', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK_SECRET).update(raw).digest('hex')}`, 'content-type': 'application/json' },
    });
    assert.equal(r.status, 200);
    // The integration is updated after the webhook's answer: give it a moment.
    let e;
    for (let i = 0; i < 200 && e?.title !== 'Edited on GitHub'; i++) {
      e = (await api('GET', `/api/integrations/${integ.id}/entities/issues?limit=100&cursor=${Buffer.from('alice/app#49').toString('base64url')}`)).body.entities.find((x) => x.id === 'alice/app#5');
      if (e?.title !== 'Edited on GitHub') await sleep(25);
    }
    assert.equal(e.title, 'Edited on GitHub');
    // A late delivery carrying an older version does not overwrite the newer one.
    const stale = JSON.stringify({ action: 'edited', repository: { id: repo.id, full_name: 'alice/app' }, issue: { ...gh.issues.get('alice/app')[4], title: 'Older edit', updated_at: '2020-01-01T00:00:00Z' } });
    const r2 = await svc.request('POST', '/webhooks/github', {
      raw: stale, headers: { 'x-github-event': 'issues', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK_SECRET).update(stale).digest('hex')}`, 'content-type': 'application/json' },
    });
    assert.equal(r2.status, 200);
    const after = (await api('GET', `/api/integrations/${integ.id}/entities/issues?limit=100&cursor=${Buffer.from('alice/app#49').toString('base64url')}`)).body.entities.find((x) => x.id === 'alice/app#5');
    assert.equal(after.title, 'Edited on GitHub');
  });

  await t.test('webhook data stops once the owner lost access; the daily re-check forgets the repository', async () => {
    const db = await svc.db();
    const lib = gh.repos.get('alice/lib.js');
    const deliver = (title) => {
      const raw = JSON.stringify({ action: 'edited', repository: { id: lib.id, full_name: 'alice/lib.js' }, issue: { ...gh.issues.get('alice/lib.js')[0], title, updated_at: gh.tick() } });
      return svc.request('POST', '/webhooks/github', {
        raw, headers: { 'x-github-event': 'issues', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK_SECRET).update(raw).digest('hex')}`, 'content-type': 'application/json' },
      });
    };
    const libIssue = async () => (await api('GET', `/api/integrations/${integ.id}/entities/issues?limit=100&cursor=${Buffer.from('alice/app#99').toString('base64url')}`)).body.entities.find((x) => x.id === 'alice/lib.js#1');
    const holders = async () => (await db.prepare('SELECT holder_key, verified_at FROM integration_holders WHERE integration_id = ? ORDER BY holder_key').bind(integ.id).all()).results;
    assert.ok((await holders()).every((h) => h.verified_at), 'the sync verified every repository it listed');
    // Verified by the last sync: a delivery reaches the integration.
    assert.equal((await deliver('Still visible')).status, 200);
    for (let i = 0; i < 200 && (await libIssue())?.title !== 'Still visible'; i++) await sleep(25);
    assert.equal((await libIssue()).title, 'Still visible');
    // The verification lapses and Alice loses the repository: deliveries no longer reach her.
    const twoDaysAgo = new Date(Date.now() - 2 * 86400_000).toISOString();
    await db.prepare('UPDATE integration_holders SET verified_at = ? WHERE integration_id = ?').bind(twoDaysAgo, integ.id).run();
    gh.restrict('alice/lib.js', ['someone-else']);
    assert.equal((await deliver('After access was lost')).status, 200);
    await sleep(1000);
    assert.equal((await libIssue()).title, 'Still visible', 'nothing was written');
    // The re-check asks GitHub with her token: lib.js is forgotten (its row and its entities),
    // the repositories she still sees are verified again.
    await tick();
    for (let i = 0; i < 200 && (await holders()).some((h) => h.holder_key === String(lib.id)); i++) await sleep(50);
    const after = await holders();
    assert.ok(!after.some((h) => h.holder_key === String(lib.id)), 'the lost repository is no longer held');
    assert.ok(after.length > 0 && after.every((h) => h.verified_at > twoDaysAgo), 'the others were verified again');
    assert.equal(await libIssue(), undefined, 'its issues left the integration');
    assert.ok(await count(integ.id, 'issues') > 0, 'the other repositories\' issues stay');
    gh.access.delete('alice/lib.js');
  });

  await t.test('fetch and push', async () => {
    const pushed = await api('POST', `/api/integrations/${integ.id}/push`, { entityType: 'issues', data: { repository: 'alice/lib.js', title: 'From the agent', body: 'b' } });
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    const n = pushed.body.result.number;
    assert.equal(gh.issues.get('alice/lib.js').at(-1).title, 'From the agent');
    const comment = await api('POST', `/api/integrations/${integ.id}/push`, { entityType: 'comments', data: { repository: 'alice/lib.js', number: n, body: 'hello' } });
    assert.equal(comment.status, 201);
    assert.equal(gh.comments.at(-1).body, 'hello');
    const fetched = await api('POST', `/api/integrations/${integ.id}/fetch`, { entityType: 'issues', externalId: `alice/lib.js#${n}` });
    assert.equal(fetched.body.entity.title, 'From the agent');
    assert.equal((await api('POST', `/api/integrations/${integ.id}/fetch`, { entityType: 'issues', externalId: 'alice/lib.js#9999' })).status, 404);
    assert.equal((await api('POST', `/api/integrations/${integ.id}/push`, { entityType: 'wiki', data: { repository: 'a/b' } })).status, 400);
  });

  await t.test('filters.repositories: only the repositories it lists are synced; unknown or misshapen filters are 400', async () => {
    for (const filters of [{ labels: ['INBOX'] }, { repositories: 'alice/app' }, { repositories: ['no-slash'] }, { repositories: [] }]) {
      const field = `config.filters.${Object.keys(filters)[0]}`;
      const created = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: TOKEN }, config: { filters } }, bob);
      assert.deepEqual([created.status, created.body.code, created.body.details?.[0]?.field], [400, 'VALIDATION_ERROR', field], JSON.stringify(created.body));
      const patched = await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual', filters } });
      assert.deepEqual([patched.status, patched.body.details?.[0]?.field], [400, field]);
    }
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual', filters: [] } })).body.details[0].field, 'config.filters');
    const set = await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual', filters: { repositories: ['ALICE/lib.js'] } } });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const before = gh.fake.requests.length;
    const full = await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true });
    assert.equal((await waitSync(integ.id, full.body.syncId)).status, 'completed');
    const seen = gh.fake.requests.slice(before).map((r) => r.path);
    assert.ok(!seen.includes('/api/user/repos'), 'the listed repository is read, not every one listed');
    assert.ok(seen.includes('/api/repos/ALICE/lib.js'));
    assert.ok(!seen.some((p) => p.startsWith('/api/repos/alice/app')), `never alice/app: ${seen}`);
    const repos = (await api('GET', `/api/integrations/${integ.id}/entities/repositories?includeDeleted=false`)).body.entities;
    assert.deepEqual(repos.map((r) => r.full_name), ['alice/lib.js']);
    const issues = await count(integ.id, 'issues', '&includeDeleted=false');
    assert.equal(issues, gh.issues.get('alice/lib.js').filter((i) => !i.pull_request).length);
    // Incremental runs walk only the listed repository too.
    const mark = gh.fake.requests.length;
    const inc = await api('POST', `/api/integrations/${integ.id}/sync`, {});
    assert.equal((await waitSync(integ.id, inc.body.syncId)).status, 'completed');
    assert.ok(!gh.fake.requests.slice(mark).some((r) => r.path.startsWith('/api/repos/alice/app')));
    // Without the filter, everything again.
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual' } })).status, 200);
    const again = await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true });
    assert.equal((await waitSync(integ.id, again.body.syncId)).status, 'completed');
    assert.equal(await count(integ.id, 'repositories', '&includeDeleted=false'), 3);
  });

  await t.test('patch: reactivation re-tests the connection; scope is admin-only; org members read', async () => {
    let db = await svc.db();
    await db.prepare("UPDATE integrations SET status = 'error', error_message = 'x' WHERE id = ?").bind(integ.id).run();
    assert.equal((await api('POST', `/api/integrations/${integ.id}/sync`, {})).status, 400);
    const re = await api('PATCH', `/api/integrations/${integ.id}`, { status: 'active' });
    assert.equal(re.status, 200);
    assert.deepEqual([re.body.integration.status, re.body.integration.errorMessage], ['active', null]);
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { scope: 'org' })).status, 403);
    // An admin's own integration shared with the org.
    const token2 = 'gho_admin_integration_token_0000000';
    knownSecrets.add(token2);
    gh.addUser(token2, { id: 6, login: 'root' });
    const mine = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: token2 }, config: {} }, admin);
    assert.equal((await api('PATCH', `/api/integrations/${mine.body.integration.id}`, { scope: 'org' }, admin)).body.integration.scope, 'org');
    const seen = (await api('GET', '/api/integrations', undefined, bob)).body.integrations;
    assert.deepEqual(seen.map((i) => [i.id, i.owned]), [[mine.body.integration.id, false]]);
    assert.equal((await api('GET', `/api/integrations/${mine.body.integration.id}`, undefined, bob)).status, 200);
    assert.equal((await api('POST', `/api/integrations/${mine.body.integration.id}/sync`, {}, bob)).status, 404, 'read-only for others');
    assert.equal((await api('DELETE', `/api/integrations/${mine.body.integration.id}`, undefined, bob)).status, 404);
  });

  const bobToken = 'gho_bob_oauth_token_000000000000000';
  let bobInteg;
  await t.test('OAuth round trip creates the integration; no token reaches the client', async () => {
    const start = await api('GET', `/api/integrations/github/oauth?redirect_uri=${encodeURIComponent('https://app.example.com/integrations/callback')}`, undefined, bob);
    assert.equal(start.status, 200);
    assert.ok(start.body.url.startsWith(`${gh.web}/login/oauth/authorize?`));
    assert.equal((await api('GET', `/api/integrations/github/oauth?redirect_uri=${encodeURIComponent('https://evil.example/cb')}`, undefined, bob)).status, 400);
    knownSecrets.add(bobToken);
    gh.addUser(bobToken, { id: 7, login: 'bob' });
    const challenge = new URL(start.body.url).searchParams.get('code_challenge');
    assert.equal(new URL(start.body.url).searchParams.get('code_challenge_method'), 'S256');
    gh.codes.set('bob-code', { token: bobToken, challenge });
    const cb = { code: 'bob-code', state: start.body.state, redirect_uri: 'https://app.example.com/integrations/callback' };
    assert.equal((await api('POST', '/api/integrations/github/oauth/callback', cb, alice)).status, 400, 'state bound to its user');
    const done = await api('POST', '/api/integrations/github/oauth/callback', cb, bob);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.deepEqual([done.body.integration.service, done.body.integration.status], ['github', 'active']);
    bobInteg = done.body.integration;
    assert.ok(!done.text.includes(bobToken));
    assert.equal((await api('POST', '/api/integrations/github/oauth/callback', cb, bob)).body.code, 'INVALID_STATE', 'single use');
    const keys = await svc.apiKeys(bob.userId);
    const own = await keys('retrieve', { userId: bob.userId, service: `integration:${done.body.integration.id}` });
    assert.equal(own.body.credentials.access_token, bobToken);
    assert.equal((await keys('retrieve', { userId: bob.userId, service: 'github' })).status, 404, 'not under the bare service name');
  });

  await t.test('a GitHub App\'s expiring user tokens: refreshed inside API_KEYS (one refresh for concurrent calls, persisted, rotated); a refused refresh → error and RECONNECT_REQUIRED', async () => {
    gh.onIssue = (token) => knownSecrets.add(token);
    const carol = await svc.createUser({ email: 'carol@example.com' });
    const carolToken = 'ghu_carol_user_token_000000000000000';
    knownSecrets.add(carolToken);
    gh.addUser(carolToken, { id: 8, login: 'carol' });
    const redirect = 'https://app.example.com/integrations/callback';
    const start = await api('GET', `/api/integrations/github/oauth?redirect_uri=${encodeURIComponent(redirect)}`, undefined, carol);
    gh.codes.set('carol-code', { token: carolToken, challenge: new URL(start.body.url).searchParams.get('code_challenge'), expiring: true });
    // Tokens that live a minute (inside the 5-minute margin): refreshed before the connection is
    // checked, and again on the first call.
    const before = gh.refreshes;
    gh.lifetimeSeconds = 60;
    const done = await api('POST', '/api/integrations/github/oauth/callback', { code: 'carol-code', state: start.body.state, redirect_uri: redirect }, carol);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    gh.lifetimeSeconds = 28800;
    assert.equal(gh.refreshes - before, 1, 'refreshed before the check');
    const id = done.body.integration.id;
    const keys = await svc.apiKeys(carol.userId);
    const stored = async () => (await keys('retrieve', { userId: carol.userId, service: `integration:${id}` })).body.credentials;
    const first = await stored();
    assert.match(first.access_token, /^ghu_/);
    assert.notEqual(first.access_token, carolToken);
    assert.match(first.refresh_token, /^ghr_/);
    assert.ok(Math.abs(Number(first.expires_at) - (Date.now() / 1000 + 60)) < 30);
    assert.ok(Number(first.refresh_token_expires_at) > Date.now() / 1000 + 15_000_000);
    const act = (name, params) => api('POST', `/api/integrations/${id}/actions/${name}`, params, carol);
    gh.refreshDelayMs = 200;
    const results = await Promise.all(Array.from({ length: 10 }, () => act('get_repository', { repository: 'alice/app' })));
    gh.refreshDelayMs = 0;
    assert.deepEqual(results.map((r) => r.status), Array(10).fill(200), JSON.stringify(results.find((r) => r.status !== 200)?.body));
    assert.equal(gh.refreshes - before, 2, 'one refresh for ten concurrent calls');
    const second = await stored();
    assert.notEqual(second.access_token, first.access_token);
    assert.notEqual(second.refresh_token, first.refresh_token, 'GitHub rotates the refresh token; the new one is kept');
    assert.ok(Number(second.expires_at) > Date.now() / 1000 + 28000);
    assert.equal(gh.users.has(first.access_token), false, 'the old token no longer works at GitHub');
    // GitHub refuses the token before its time: the 401 triggers one refresh and the call succeeds.
    gh.expire(second.access_token);
    const again = await act('get_repository', { repository: 'alice/app' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(gh.refreshes - before, 3);
    assert.notEqual((await stored()).access_token, second.access_token);
    // A sync runs with the refreshed token too.
    const sync = await api('POST', `/api/integrations/${id}/sync`, { entities: ['repositories'] }, carol);
    let run;
    for (let i = 0; i < 400 && !['completed', 'failed'].includes(run?.status); i++) {
      run = (await api('GET', `/api/integrations/${id}/sync/${sync.body.syncId}`, undefined, carol)).body;
      if (!['completed', 'failed'].includes(run.status)) await sleep(50);
    }
    assert.equal(run.status, 'completed', JSON.stringify(run));
    // The refresh token is revoked at GitHub: the integration must be reconnected.
    gh.revokeRefresh('carol');
    gh.expire((await stored()).access_token);
    const refused = await act('get_repository', { repository: 'alice/app' });
    assert.deepEqual([refused.status, refused.body.code], [409, 'RECONNECT_REQUIRED'], JSON.stringify(refused.body));
    const after = (await api('GET', `/api/integrations/${id}`, undefined, carol)).body.integration;
    assert.deepEqual([after.status, after.errorMessage], ['error', 'GitHub access was revoked or expired; reconnect the account']);
    assert.equal((await act('get_repository', { repository: 'alice/app' })).body.code, 'RECONNECT_REQUIRED');
  });

  await t.test('delete revokes the GitHub grant an OAuth round trip obtained (the app\'s basic auth), not a token given directly', async () => {
    assert.deepEqual((await api('DELETE', `/api/integrations/${bobInteg.id}`, undefined, bob)).body, { success: true });
    for (let i = 0; i < 200 && !gh.grantDeletions.length; i++) await sleep(25);
    assert.deepEqual(gh.grantDeletions, [{ clientId: 'gh-client-id', token: bobToken, authorized: true }]);
    const call = gh.fake.requests.find((r) => r.method === 'DELETE' && r.path === '/api/applications/gh-client-id/grant');
    assert.equal(call.headers.authorization, `Basic ${Buffer.from('gh-client-id:gh-client-secret').toString('base64')}`);
    assert.deepEqual(call.json, { access_token: bobToken });
    assert.equal(gh.users.has(bobToken), false, 'the token stopped working at GitHub');
  });

  await t.test('delete removes credentials and entities', async () => {
    assert.deepEqual((await api('DELETE', `/api/integrations/${integ.id}`)).body, { success: true });
    assert.equal((await api('GET', `/api/integrations/${integ.id}/entities/issues`)).status, 404);
    // The integration's object is dropped through the outbox and the queue.
    const data = await svc.integrationData(integ.id);
    for (let i = 0; i < 200 && (await data('stats')).body.entities > 0; i++) await sleep(50);
    assert.equal((await data('stats')).body.entities, 0);
    const keys = await svc.apiKeys(alice.userId);
    assert.equal((await keys('retrieve', { userId: alice.userId, service: `integration:${integ.id}` })).status, 404);
    await sleep(200);
    assert.equal(gh.grantDeletions.length, 1, 'a token given directly is the user\'s own: not revoked');
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
