// Session registry: create (with repository parsing and the web binding), list, get,
// git state, children, the orchestrator, and ownership.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService } from '../lib/harness.mjs';

test('sessions', async (t) => {
  const svc = await startService(t);
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const db = await svc.db();
  let parent;

  await t.test('POST /api/sessions creates the session, its git state and its web binding', async () => {
    const r = await svc.request('POST', '/api/sessions', {
      token: alice.token,
      body: { workspace: 'api', title: 'Fix it', repoUrl: 'https://github.com/octo/socket.io.git', branch: 'fix/x', sourcePrNumber: 42 },
    });
    assert.equal(r.status, 201);
    parent = r.body.session;
    assert.match(parent.id, /^[0-9a-f-]{36}$/);
    assert.equal(parent.userId, alice.userId);
    assert.equal(parent.workspace, 'api');
    assert.equal(parent.isOrchestrator, false);
    assert.equal(parent.purpose, 'interactive');
    assert.equal(parent.gitState.sourceRepoFullName, 'octo/socket.io');
    assert.equal(parent.gitState.branch, 'fix/x');
    assert.equal(parent.gitState.sourcePrNumber, 42);
    assert.equal(parent.gitState.sourceType, 'pr');
    assert.equal(parent.gitState.commitCount, 0);
    const b = await svc.request('GET', '/api/channels/bindings', { token: alice.token });
    assert.deepEqual(b.body.bindings.map((x) => [x.channelType, x.channelId, x.scopeKey, x.queueMode]),
      [['web', parent.id, `user:${alice.userId}:manual:${parent.id}`, 'followup']]);
  });

  await t.test('repository references: owner/repo, ssh, dotted names; explicit full name wins', async () => {
    const cases = [
      [{ repoUrl: 'octo/my.repo' }, 'octo/my.repo'],
      [{ repoUrl: 'git@github.com:octo/dots.in.name.git' }, 'octo/dots.in.name'],
      [{ repoUrl: 'https://github.com/octo/a', sourceRepoFullName: 'other/b.c' }, 'other/b.c'],
    ];
    for (const [extra, expected] of cases) {
      const r = await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'w', ...extra } });
      assert.equal(r.status, 201, JSON.stringify(extra));
      assert.equal(r.body.session.gitState.sourceRepoFullName, expected);
    }
    const none = await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'plain' } });
    assert.equal(none.body.session.gitState, null);
    const gs = await svc.request('GET', `/api/sessions/${none.body.session.id}/git-state`, { token: alice.token });
    assert.deepEqual(gs.body, { gitState: null });
  });

  await t.test('invalid input is rejected with details and writes nothing', async () => {
    const count = async () => (await db.prepare('SELECT COUNT(*) AS n FROM sessions').first()).n;
    const before = await count();
    const cases = [
      {}, { workspace: '' }, { workspace: 'x'.repeat(101) }, { workspace: 'w', repoUrl: 'not a repo' },
      { workspace: 'w', sourceType: 'tag' }, { workspace: 'w', sourcePrNumber: -1 }, { workspace: 'w', sourcePrNumber: 'x' },
      { workspace: 'w', sourceRepoFullName: 'nope' },
    ];
    for (const body of cases) {
      const r = await svc.request('POST', '/api/sessions', { token: alice.token, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.code, 'VALIDATION_ERROR');
    }
    // Someone else's parent is "no such session".
    const bobs = await svc.request('POST', '/api/sessions', { token: bob.token, body: { workspace: 'b' } });
    const r = await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'w', parentSessionId: bobs.body.session.id } });
    assert.equal(r.status, 400);
    assert.equal(r.body.details[0].field, 'parentSessionId');
    assert.equal(await count(), before + 1);
  });

  await t.test('children, list and get; other users see 404', async () => {
    const child = await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'c', parentSessionId: parent.id } });
    assert.equal(child.status, 201);
    assert.equal(child.body.session.parentSessionId, parent.id);
    const kids = await svc.request('GET', `/api/sessions/${parent.id}/children`, { token: alice.token });
    assert.deepEqual(kids.body.sessions.map((s) => s.id), [child.body.session.id]);
    const got = await svc.request('GET', `/api/sessions/${parent.id}`, { token: alice.token });
    assert.equal(got.body.session.gitState.prNumber, null);
    assert.equal(got.body.session.gitState.sourceRepoFullName, 'octo/socket.io');
    const list = await svc.request('GET', '/api/sessions?limit=2', { token: alice.token });
    assert.equal(list.body.sessions.length, 2);
    assert.equal(list.body.hasMore, true);
    const rest = await svc.request('GET', `/api/sessions?cursor=${list.body.cursor}`, { token: alice.token });
    const ids = [...list.body.sessions, ...rest.body.sessions].map((s) => s.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(ids.includes(parent.id));
    for (const path of ['', '/git-state', '/children', '/messages', '/queue', '/events']) {
      const r = await svc.request('GET', `/api/sessions/${parent.id}${path}`, { token: bob.token });
      assert.equal(r.status, 404, path);
      assert.equal(r.body.code, 'NOT_FOUND');
    }
    for (const path of ['/queue/claim', '/queue/clear', '/stop', '/queue/x/complete']) {
      assert.equal((await svc.request('POST', `/api/sessions/${parent.id}${path}`, { token: bob.token, body: {} })).status, 404, path);
    }
    assert.ok(!(await svc.request('GET', '/api/sessions', { token: bob.token })).body.sessions.some((s) => s.id === parent.id));
  });

  await t.test('POST /api/me/orchestrator creates once, then returns the same session', async () => {
    const first = await svc.request('POST', '/api/me/orchestrator', { token: bob.token });
    assert.equal(first.status, 201);
    assert.equal(first.body.session.isOrchestrator, true);
    assert.equal(first.body.session.purpose, 'orchestrator');
    const again = await Promise.all([1, 2, 3].map(() => svc.request('POST', '/api/me/orchestrator', { token: bob.token })));
    for (const r of again) {
      assert.equal(r.status, 200);
      assert.equal(r.body.session.id, first.body.session.id);
    }
    // No web binding for the orchestrator.
    const b = await svc.request('GET', '/api/channels/bindings', { token: bob.token });
    assert.ok(!b.body.bindings.some((x) => x.sessionId === first.body.session.id));
    // A terminated orchestrator is replaced.
    await db.prepare("UPDATE sessions SET status = 'terminated' WHERE id = ?").bind(first.body.session.id).run();
    const fresh = await svc.request('POST', '/api/me/orchestrator', { token: bob.token });
    assert.equal(fresh.status, 201);
    assert.notEqual(fresh.body.session.id, first.body.session.id);
  });
});
