// Background work on real local Queues (Miniflare): a consumer that dies mid-slice is
// redelivered and finishes with exact counts; cron ticks racing a manual sync make one run;
// exhausted retries land in the dead-letter queue and fail the run with its reason; a run
// whose worker died is picked up again; webhook side effects go through the outbox and
// survive a failed delivery and a lost message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HOOK_SECRET = 'background-webhook-secret-000';

test('background work survives the platform', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { SYNC_REQUEST_BUDGET: '12', GITHUB_WEBHOOK_SECRET: HOOK_SECRET, TEST_MAX_RETRIES: '2' },
  });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const TOKEN = 'gho_background_token_0123456789abcd';
  knownSecrets.add(TOKEN);
  gh.addUser(TOKEN, { id: 5, login: 'alice' });
  gh.addRepo('alice/app');
  gh.addRepo('alice/lib');
  gh.addIssues('alice/app', 230);
  gh.addIssues('alice/lib', 40);
  gh.addCommits('alice/app', 30);
  const api = (method, path, body) => svc.request(method, path, { token: alice.token, body });
  const db = async () => svc.db();
  const tick = async () => (await svc.mf.getWorker()).scheduled({ cron: '* * * * *' });
  const waitSync = async (id, syncId, timeout = 30000) => {
    const t0 = Date.now();
    for (;;) {
      const r = await api('GET', `/api/integrations/${id}/sync/${syncId}`);
      if (['completed', 'failed'].includes(r.body.status)) return r.body;
      if (Date.now() - t0 > timeout) throw new Error(`sync stuck: ${JSON.stringify(r.body)}`);
      await sleep(50);
    }
  };
  // What the integration's object holds, per entity type: rows and distinct ids of live entities.
  const rows = async (id) => {
    const data = await svc.integrationData(id);
    const out = [];
    for (const type of ['commits', 'issues', 'pull_requests', 'repositories']) {
      const ids = [];
      let after = '';
      for (;;) {
        const page = (await data('entities', { entity: type, after, includeDeleted: false, limit: 1000 })).body.rows;
        ids.push(...page.map((r) => r.external_id));
        if (page.length < 1000) break;
        after = page[page.length - 1].external_id;
      }
      out.push({ entity_type: type, n: ids.length, d: new Set(ids).size });
    }
    return out.filter((r) => r.n > 0);
  };
  const expected = [
    { entity_type: 'commits', n: 30, d: 30 },
    { entity_type: 'issues', n: 270, d: 270 },
    { entity_type: 'pull_requests', n: 0, d: 0 },
    { entity_type: 'repositories', n: 2, d: 2 },
  ].filter((r) => r.n > 0);
  const r = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: TOKEN }, config: { syncFrequency: 'manual' } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const integ = r.body.integration;

  await t.test('a consumer that dies mid-slice is redelivered and the run completes with the same counts', async () => {
    await svc.reconfigure({ FAULT_DIE_AFTER_COMMITS: '2', SYNC_REQUEST_BUDGET: '1000' });
    const s = await api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true });
    const done = await waitSync(integ.id, s.body.syncId);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.ok(svc.logs.join('').includes('fault injection: the consumer dies after 2 committed pages'), 'the consumer really died');
    assert.ok(done.invocations >= 2, `${done.invocations} invocations`);
    assert.equal(done.progress, 2 + 270 + 30, 'each page counted once');
    assert.deepEqual(await rows(integ.id), expected, 'no duplicate rows');
    await svc.reconfigure({ FAULT_DIE_AFTER_COMMITS: undefined, SYNC_REQUEST_BUDGET: '12' });
  });

  await t.test('two cron ticks and a manual sync at once make one run', async () => {
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'hourly' } })).status, 200);
    const d = await db();
    await d.prepare("UPDATE sync_logs SET started_at = '2026-01-01T00:00:00.000Z' WHERE integration_id = ?").bind(integ.id).run();
    const before = (await d.prepare('SELECT COUNT(*) AS n FROM sync_logs WHERE integration_id = ?').bind(integ.id).first()).n;
    const [, , manual] = await Promise.all([tick(), tick(), api('POST', `/api/integrations/${integ.id}/sync`, { fullSync: true })]);
    assert.ok([202, 409].includes(manual.status));
    const runs = (await d.prepare('SELECT id FROM sync_logs WHERE integration_id = ? ORDER BY started_at DESC').bind(integ.id).all()).results;
    assert.equal(runs.length, before + 1, 'exactly one new run');
    const done = await waitSync(integ.id, runs[0].id);
    assert.equal(done.status, 'completed');
    assert.deepEqual(await rows(integ.id), expected);
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual' } })).status, 200);
  });

  await t.test('exhausted retries land in the dead-letter queue and fail the run with the reason', async () => {
    gh.fake.fault(/\/issues$/, { status: 503, json: { message: 'Service Unavailable' } }, 50);
    const s = await api('POST', `/api/integrations/${integ.id}/sync`, { entities: ['issues'], fullSync: true });
    const done = await waitSync(integ.id, s.body.syncId);
    gh.fake.reset();
    assert.equal(done.status, 'failed');
    assert.equal(done.result.errors[0].code, 'SYNC_RETRIES_EXHAUSTED');
    assert.match(done.result.errors[0].message, /issues: upstream answered 503: GitHub: Service Unavailable/);
    assert.equal(done.invocations, 3, 'the first delivery and two retries');
    const i = (await api('GET', `/api/integrations/${integ.id}`)).body.integration;
    assert.equal(i.status, 'active', 'an outage is not the user\'s to fix');
    assert.match(i.errorMessage, /Gave up after repeated failures/);
    assert.deepEqual(await rows(integ.id), expected, 'nothing lost by the failed run');
  });

  await t.test('a run whose worker died (lease expired, no message) is picked up by the cron', async () => {
    const d = await db();
    const state = JSON.stringify({ entities: ['repositories', 'issues'], index: 0, position: null });
    await d.prepare(`INSERT INTO sync_logs (id, integration_id, status, full_sync, state, started_at, heartbeat_at, lease_owner, lease_until)
      VALUES ('orphan-run', ?, 'running', 1, ?, ?, ?, 'dead-worker', ?)`)
      .bind(integ.id, state, new Date(Date.now() - 180000).toISOString(), new Date(Date.now() - 120000).toISOString(), new Date(Date.now() - 1000).toISOString()).run();
    await tick();
    const done = await waitSync(integ.id, 'orphan-run');
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.progress, 2 + 270);
  });

  await t.test('a held lease keeps the cron and duplicates out', async () => {
    const d = await db();
    const until = new Date(Date.now() + 60000).toISOString();
    await d.prepare(`INSERT INTO sync_logs (id, integration_id, status, state, started_at, heartbeat_at, lease_owner, lease_until)
      VALUES ('leased-run', ?, 'running', '{"entities":["repositories"],"index":0}', ?, ?, 'live-worker', ?)`)
      .bind(integ.id, new Date(Date.now() - 180000).toISOString(), new Date(Date.now() - 120000).toISOString(), until).run();
    await tick();
    await sleep(1500);
    const row = await d.prepare("SELECT status, lease_owner, invocations FROM sync_logs WHERE id = 'leased-run'").first();
    assert.deepEqual(row, { status: 'running', lease_owner: 'live-worker', invocations: 0 });
    await d.prepare("DELETE FROM sync_logs WHERE id = 'leased-run'").run();
  });

  // Sessions tracking alice/app: the push webhook's notification goes through the outbox.
  // Alice's GitHub token links her account (id 5) and verifies the session's repository.
  assert.equal((await api('PUT', '/api/me/github-token', { token: TOKEN })).status, 200);
  const session = (await api('POST', '/api/sessions', { workspace: 'w', repoUrl: 'alice/app', branch: 'main' })).body.session;
  const push = (commits) => {
    const raw = JSON.stringify({ ref: 'refs/heads/main', after: randomBytes(20).toString('hex'), repository: { id: gh.repos.get('alice/app').id, full_name: 'alice/app' }, sender: { id: 5 }, commits: Array.from({ length: commits }, (_, i) => ({ id: `c${i}` })) });
    return svc.request('POST', '/webhooks/github', {
      raw, headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK_SECRET).update(raw).digest('hex')}` },
    });
  };
  const gitEvents = async () => (await api('GET', `/api/sessions/${session.id}/events`)).body.events.filter((e) => e.type === 'git-state');
  const waitEvents = async (n, timeout = 15000) => {
    const t0 = Date.now();
    let evs = [];
    while (Date.now() - t0 < timeout) {
      evs = await gitEvents();
      if (evs.length >= n) return evs;
      await sleep(50);
    }
    return evs;
  };

  await t.test('a webhook notification that fails once is retried and delivered once', async () => {
    await svc.reconfigure({ FAULT_OUTBOX_FAILURES: '1' });
    const r = await push(3);
    assert.deepEqual([r.status, r.body.sessionsUpdated], [200, 1]);
    const evs = await waitEvents(1);
    const d = await db();
    assert.equal(evs.length, 1, JSON.stringify((await d.prepare('SELECT * FROM outbox').all()).results) + svc.logs.filter((l) => /outbox|queue|fault/i.test(l)).join('\n').slice(-2000));
    assert.deepEqual([evs[0].data.commitCount, evs[0].data.branch], [3, 'main']);
    assert.ok(svc.logs.join('').includes('fault injection: delivery failed'), 'the first delivery really failed');
    for (let i = 0; i < 40 && (await d.prepare('SELECT COUNT(*) AS n FROM outbox').first()).n > 0; i++) await sleep(50);
    assert.equal((await d.prepare('SELECT COUNT(*) AS n FROM outbox').first()).n, 0);
    await sleep(300);
    assert.equal((await gitEvents()).length, 1, 'delivered exactly once');
    await svc.reconfigure({ FAULT_OUTBOX_FAILURES: undefined });
  });

  await t.test('an outbox row whose message was lost is delivered by the cron; a repeat is recognised', async () => {
    const d = await db();
    const old = new Date(Date.now() - 300000).toISOString();
    const payload = JSON.stringify({ type: 'git-state-update', commitCount: 9, branch: 'main' });
    await d.prepare("INSERT INTO outbox (id, batch, kind, target, payload, created_at) VALUES ('lost-1', 'lost-batch', 'session-git', ?, ?, ?)").bind(session.id, payload, old).run();
    await tick();
    const evs = await waitEvents(2);
    assert.equal(evs.length, 2);
    assert.equal(evs[1].data.commitCount, 9);
    // The same row delivered again (an at-least-once retry) records nothing new.
    await d.prepare("INSERT INTO outbox (id, batch, kind, target, payload, created_at) VALUES ('lost-1', 'again', 'session-git', ?, ?, ?)").bind(session.id, payload, old).run();
    await tick();
    for (let i = 0; i < 40 && (await d.prepare('SELECT COUNT(*) AS n FROM outbox').first()).n > 0; i++) await sleep(50);
    await sleep(200);
    assert.equal((await gitEvents()).length, 2);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
