// POST /webhooks/github: raw-body HMAC, fail closed, idempotent deliveries, PR state mapping,
// atomic push counting scoped to the pusher's own sessions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { startService } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';

const SECRET = 'github-webhook-secret-for-tests';

test('GitHub webhooks', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, {
    vars: { GITHUB_WEBHOOK_SECRET: SECRET, PR_RECONCILE_INTERVAL_SECONDS: '0' },
    upstreams: { github: gh.api, githubWeb: gh.web },
  });
  let db = await svc.db();
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  // Each connects a GitHub token: it links their GitHub account (ids 101, 202) and lets the
  // service verify the repositories their sessions declare.
  for (const [user, id, login] of [[alice, 101, 'alice'], [bob, 202, 'bob']]) {
    gh.addUser(`gho_${login}_token_for_tests_0001`, { id, login });
    const r = await svc.request('PUT', '/api/me/github-token', { token: user.token, body: { token: `gho_${login}_token_for_tests_0001` } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  for (const name of ['octo/hello.world', 'octo/form', 'octo/secret']) gh.addRepo(name);
  gh.restrict('octo/secret', ['gho_alice_token_for_tests_0001']);
  /** `repository` as GitHub sends it: its numeric id and its name (in any case). */
  const repo = (fullName) => ({ id: gh.repos.get(fullName.toLowerCase())?.id ?? 987654, full_name: fullName });
  const tick = async () => (await svc.mf.getWorker()).scheduled({ cron: '* * * * *' });
  const until = async (check, what, timeout = 15000) => {
    const t0 = Date.now();
    for (;;) {
      const v = await check();
      if (v) return v;
      if (Date.now() - t0 > timeout) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const sign = (raw, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
  const deliver = (event, raw, { delivery = randomUUID(), signature, headers = {} } = {}) =>
    svc.request('POST', '/webhooks/github', {
      raw,
      headers: { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': delivery,
        ...(signature === null ? {} : { 'x-hub-signature-256': signature ?? sign(raw) }), ...headers },
    });
  const session = async (user, body) => (await svc.request('POST', '/api/sessions', { token: user.token, body: { workspace: 'w', ...body } })).body.session;
  const git = async (user, id) => (await svc.request('GET', `/api/sessions/${id}/git-state`, { token: user.token })).body.gitState;
  const eventsNow = async (user, id) => (await svc.request('GET', `/api/sessions/${id}/events`, { token: user.token })).body.events;
  // Session objects are notified after the webhook's answer: wait briefly for the events.
  const events = async (user, id, min = 1) => {
    let evs = [];
    for (let i = 0; i < 40; i++) {
      evs = await eventsNow(user, id);
      if (evs.filter((e) => e.type === 'git-state').length >= min) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    return evs;
  };

  // Alice's session created PR #7 on Octo/Hello.World; Bob's session works on PR #7 as its source.
  const own = await session(alice, { repoUrl: 'https://github.com/octo/hello.world', branch: 'feat' });
  await db.prepare('UPDATE session_git_state SET pr_number = 7 WHERE session_id = ?').bind(own.id).run();
  const reviewing = await session(bob, { repoUrl: 'octo/hello.world', sourcePrNumber: 7 });
  // Each PR delivery is newer than the one before, as GitHub's own are.
  let clock = 0;
  const prPayload = (action, pr) => JSON.stringify({
    action, number: 7, repository: repo('Octo/Hello.World'),
    pull_request: { number: 7, title: 'Add feature', html_url: 'https://github.com/octo/hello.world/pull/7', state: 'open', draft: false, merged_at: null,
      updated_at: new Date(Date.UTC(2026, 10, 2) + ++clock * 1000).toISOString().replace('.000Z', 'Z'), ...pr },
  });
  const sha = () => randomBytes(20).toString('hex');

  await t.test('signatures: valid passes; wrong, missing or other-secret ones change nothing', async () => {
    const raw = prPayload('opened', {});
    for (const signature of [null, 'sha256=deadbeef', sign(raw, 'not-the-secret'), sign(raw).replace('sha256=', 'sha1=')]) {
      const r = await deliver('pull_request', raw, { signature });
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, { error: 'Invalid signature', code: 'INVALID_SIGNATURE' });
    }
    assert.equal((await git(alice, own.id)).prState, null);
    const ok = await deliver('ping', JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 }));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.event, 'ping');
    const noEvent = await svc.request('POST', '/webhooks/github', { raw: '{}', headers: { 'x-hub-signature-256': sign('{}') } });
    assert.equal(noEvent.status, 400);
    assert.equal(noEvent.body.code, 'MISSING_EVENT');
  });

  await t.test('a body with whitespace and escaped unicode verifies over its exact bytes', async () => {
    const raw = `{\n  "action": "opened",\n  "number": 7,\n  "repository": {"id": ${repo('octo/hello.world').id}, "full_name": "octo/hello.world"},\n  "pull_request": {\n    "number": 7,\n    "title": "Caf\\u00e9 \\ud83d\\ude80 \\/ fix",\n    "html_url": "https:\\/\\/github.com\\/octo\\/hello.world\\/pull\\/7",\n    "state": "open", "draft": true, "merged_at": null, "updated_at": "2026-11-01T00:00:00Z"\n  }\n}\n`;
    const r = await deliver('pull_request', raw);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const gs = await git(alice, own.id);
    assert.equal(gs.prState, 'draft');
    assert.equal(gs.prTitle, 'Café 🚀 / fix');
    // The source-PR session is notified, not overwritten.
    const bobGit = await git(bob, reviewing.id);
    assert.equal(bobGit.prState, null);
    assert.deepEqual([bobGit.sourcePrState, bobGit.sourcePrTitle], ['draft', 'Café 🚀 / fix']);
    assert.ok((await events(bob, reviewing.id)).some((e) => e.type === 'git-state' && e.data.prState === 'draft'));
  });

  await t.test('PR opened / draft / closed / merged / reopened', async () => {
    const steps = [
      ['ready_for_review', { draft: false }, 'open'],
      ['converted_to_draft', { draft: true }, 'draft'],
      ['closed', { state: 'closed' }, 'closed'],
      ['reopened', { state: 'open' }, 'open'],
      ['closed', { state: 'closed', merged: true, merged_at: '2026-11-20T10:00:00Z' }, 'merged'],
    ];
    for (const [action, pr, expected] of steps) {
      const r = await deliver('pull_request', prPayload(action, pr));
      assert.equal(r.status, 200);
      assert.equal(r.body.sessionsUpdated, 2);
      assert.equal((await git(alice, own.id)).prState, expected, action);
    }
    const gs = await git(alice, own.id);
    assert.equal(gs.prMergedAt, '2026-11-20T10:00:00Z');
    const evs = (await events(alice, own.id, 6)).filter((e) => e.type === 'git-state');
    assert.equal(evs.at(-1).data.prState, 'merged');
  });

  await t.test('a redelivered delivery id is acknowledged without acting twice', async () => {
    const s = await session(alice, { repoUrl: 'octo/hello.world', branch: 'redeliver' });
    const raw = JSON.stringify({ ref: 'refs/heads/redeliver', after: sha(), repository: repo('octo/hello.world'), sender: { id: 101 }, commits: [{ id: 'a' }, { id: 'b' }] });
    const delivery = randomUUID();
    const first = await deliver('push', raw, { delivery });
    assert.equal(first.body.sessionsUpdated, 1);
    const again = await deliver('push', raw, { delivery });
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
    assert.equal((await git(alice, s.id)).commitCount, 2);
  });

  await t.test('two concurrent pushes to a tracked branch are both counted', async () => {
    const s = await session(alice, { repoUrl: 'octo/hello.world', branch: 'feat/concurrent' });
    const push = (n) => JSON.stringify({ ref: 'refs/heads/feat/concurrent', after: sha(), repository: repo('OCTO/hello.world'), sender: { id: 101 },
      commits: Array.from({ length: n }, (_, i) => ({ id: `c${n}${i}` })) });
    const [a, b] = await Promise.all([deliver('push', push(2)), deliver('push', push(3))]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal((await git(alice, s.id)).commitCount, 5);
    const counts = (await events(alice, s.id, 2)).filter((e) => e.type === 'git-state').map((e) => e.data.commitCount).sort();
    assert.equal(counts.length, 2);
    assert.equal(counts.at(-1), 5);
  });

  await t.test('pushes touch only the pusher\'s sessions; untracked repos, tags and deletions touch nothing', async () => {
    const aliceMain = await session(alice, { repoUrl: 'octo/hello.world', branch: 'main' });
    const bobMain = await session(bob, { repoUrl: 'octo/hello.world', branch: 'main' });
    const raw = JSON.stringify({ ref: 'refs/heads/main', after: sha(), repository: repo('octo/hello.world'), sender: { id: 202 }, commits: [{ id: 'x' }] });
    const r = await deliver('push', raw);
    assert.equal(r.body.sessionsUpdated, 1);
    assert.equal((await git(bob, bobMain.id)).commitCount, 1);
    assert.equal((await git(alice, aliceMain.id)).commitCount, 0, 'no cross-user effect');
    for (const body of [
      { ref: 'refs/heads/main', after: sha(), repository: repo('nobody/tracks-this'), sender: { id: 202 }, commits: [{ id: 'y' }] },
      { ref: 'refs/tags/v1.0', repository: repo('octo/hello.world'), sender: { id: 202 }, commits: [{ id: 'y' }] },
      { ref: 'refs/heads/main', repository: repo('octo/hello.world'), sender: { id: 202 }, commits: [], deleted: true },
    ]) {
      const res = await deliver('push', JSON.stringify(body));
      assert.equal(res.status, 200);
      assert.equal(res.body.sessionsUpdated, 0);
    }
    // Finished sessions are left alone.
    await db.prepare("UPDATE sessions SET status = 'archived' WHERE id = ?").bind(bobMain.id).run();
    assert.equal((await deliver('push', raw.replace(/"after":"[0-9a-f]+"/, `"after":"${sha()}"`))).body.sessionsUpdated, 0);
  });

  await t.test('replays: a delivery id is required; a push counts once per head SHA; an older PR update changes nothing', async () => {
    const s = await session(alice, { repoUrl: 'octo/hello.world', branch: 'replay' });
    const raw = JSON.stringify({ ref: 'refs/heads/replay', after: sha(), repository: repo('octo/hello.world'), sender: { id: 101 }, commits: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] });
    for (const delivery of ['', 'x'.repeat(101)]) {
      const r = await deliver('push', raw, { delivery });
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'MISSING_DELIVERY');
    }
    const missing = await svc.request('POST', '/webhooks/github', { raw, headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': sign(raw) } });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.code, 'MISSING_DELIVERY');
    assert.equal((await git(alice, s.id)).commitCount, 0, 'nothing counted without a delivery id');
    // The same signed push under three fresh delivery ids counts once.
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await deliver('push', raw));
    assert.deepEqual(replies.map((r) => [r.status, r.body.sessionsUpdated]), [[200, 1], [200, 0], [200, 0]]);
    assert.equal((await git(alice, s.id)).commitCount, 3);
    const badSha = JSON.stringify({ ref: 'refs/heads/replay', after: 'not a sha', repository: repo('octo/hello.world'), sender: { id: 101 }, commits: [{ id: 'a' }] });
    const bad = await deliver('push', badSha);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'VALIDATION_ERROR');

    // A captured "opened" delivery replayed after the merge does not roll the PR back.
    const opened = prPayload('reopened', { state: 'open' });
    const merged = prPayload('closed', { state: 'closed', merged: true, merged_at: '2026-11-21T10:00:00Z' });
    assert.equal((await deliver('pull_request', opened)).status, 200);
    assert.equal((await deliver('pull_request', merged)).body.sessionsUpdated, 2);
    assert.equal((await git(alice, own.id)).prState, 'merged');
    const before = (await eventsNow(alice, own.id)).length;
    const replay = await deliver('pull_request', opened);
    assert.equal(replay.status, 200);
    assert.equal((await git(alice, own.id)).prState, 'merged', 'an older update is stale');
    // The same update again (equal updated_at) changes nothing either, and notifies nobody.
    assert.equal((await deliver('pull_request', merged)).status, 200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await eventsNow(alice, own.id)).length, before);
    // A delivery without updated_at cannot order itself: it changes no state.
    const undated = JSON.parse(prPayload('reopened', { state: 'open' }));
    delete undated.pull_request.updated_at;
    assert.equal((await deliver('pull_request', JSON.stringify(undated))).status, 200);
    assert.equal((await git(alice, own.id)).prState, 'merged');
  });

  await t.test('PR links: an opened delivery by the session owner on its branch; the runner\'s PUT git-state', async () => {
    const mine = await session(alice, { repoUrl: 'octo/hello.world', branch: 'feature-x' });
    const bobs = await session(bob, { repoUrl: 'octo/hello.world', branch: 'feature-x' });
    const opened = (number, author, head = 'octo/hello.world', action = 'opened') => JSON.stringify({
      action, number, repository: repo('octo/hello.world'),
      pull_request: { number, title: `PR ${number}`, html_url: `https://github.com/octo/hello.world/pull/${number}`, state: 'open', draft: false, merged_at: null,
        updated_at: new Date(Date.UTC(2026, 10, 3) + ++clock * 1000).toISOString(), user: { id: author }, head: { ref: 'feature-x', repo: repo(head) } },
    });
    // Someone else's PR from that branch, and a fork's, link nothing.
    assert.equal((await deliver('pull_request', opened(40, 303))).status, 200);
    assert.equal((await deliver('pull_request', opened(41, 101, 'mallory/hello.world'))).status, 200);
    assert.equal((await git(alice, mine.id)).prNumber, null);
    const r = await deliver('pull_request', opened(42, 101));
    assert.equal(r.status, 200);
    const gs = await git(alice, mine.id);
    assert.deepEqual([gs.prNumber, gs.prState, gs.prTitle], [42, 'open', 'PR 42']);
    assert.equal((await git(bob, bobs.id)).prNumber, null, 'only the author\'s session');
    // A later PR opened from the same branch does not take over a linked session.
    await deliver('pull_request', opened(43, 101));
    assert.equal((await git(alice, mine.id)).prNumber, 42);
    const closed = JSON.parse(opened(42, 101, 'octo/hello.world', 'closed'));
    closed.pull_request.state = 'closed';
    await deliver('pull_request', JSON.stringify(closed));
    assert.equal((await git(alice, mine.id)).prState, 'closed');

    // The runner reports its PR: owner only, validated, then deliveries follow it.
    const runner = await session(alice, { workspace: 'w' });
    const put = (body, user = alice, id = runner.id) => svc.request('PUT', `/api/sessions/${id}/git-state`, { token: user.token, body });
    for (const body of [{}, { prNumber: 0 }, { prUrl: 'javascript:alert(1)', prNumber: 5 }, { prUrl: 'https://github.com/o/r/pull/5' }, { commitCount: -1 }, { branch: '' }]) {
      const bad = await put(body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.code, 'VALIDATION_ERROR');
    }
    assert.equal((await put({ prNumber: 44 }, bob)).status, 404);
    assert.equal((await put({ prNumber: 44 }, alice, randomUUID())).status, 404);
    const ok = await put({ branch: 'runner-branch', prNumber: 44, prUrl: 'https://github.com/octo/hello.world/pull/44', commitCount: 3 });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual([ok.body.gitState.branch, ok.body.gitState.prNumber, ok.body.gitState.prUrl, ok.body.gitState.commitCount],
      ['runner-branch', 44, 'https://github.com/octo/hello.world/pull/44', 3]);
    // It has no repository yet: deliveries for octo/hello.world #44 do not reach it until it has
    // one and the reconciler has verified it with alice's token.
    await db.prepare("UPDATE session_git_state SET source_repo_full_name = 'octo/hello.world' WHERE session_id = ?").bind(runner.id).run();
    const merged = JSON.parse(opened(44, 101, 'octo/hello.world', 'closed'));
    Object.assign(merged.pull_request, { state: 'closed', merged: true, merged_at: '2026-11-22T10:00:00Z' });
    assert.equal((await deliver('pull_request', JSON.stringify(merged))).body.sessionsUpdated, 0);
    assert.equal((await git(alice, runner.id)).repoAccess, 'pending');
    await tick();
    await until(async () => (await git(alice, runner.id)).repoVerified, 'the reconciler to verify the repository');
    merged.pull_request.updated_at = new Date(Date.UTC(2026, 10, 3) + ++clock * 1000).toISOString();
    assert.equal((await deliver('pull_request', JSON.stringify(merged))).body.sessionsUpdated, 1);
    assert.deepEqual([(await git(alice, runner.id)).prState, (await git(alice, runner.id)).prMergedAt], ['merged', '2026-11-22T10:00:00Z']);
    await db.prepare("UPDATE sessions SET status = 'archived' WHERE id = ?").bind(runner.id).run();
    const finished = await put({ commitCount: 4 });
    assert.equal(finished.status, 409);
    assert.equal(finished.body.code, 'SESSION_FINISHED');
  });

  await t.test('repository access: a session on a repository its owner cannot read, or never checked, receives nothing', async () => {
    const alices = await session(alice, { repoUrl: 'octo/secret', branch: 'main', sourcePrNumber: 5 });
    const bobs = await session(bob, { repoUrl: 'octo/secret', branch: 'main', sourcePrNumber: 5 });
    assert.deepEqual([alices.gitState.repoVerified, alices.gitState.repoAccess], [true, 'verified']);
    assert.deepEqual([bobs.gitState.repoVerified, bobs.gitState.repoAccess], [false, 'denied']);
    // Carol has no GitHub token: her session's repository stays unchecked.
    const carol = await svc.createUser({ email: 'carol@example.com' });
    await db.prepare("UPDATE users SET github_id = '303' WHERE id = ?").bind(carol.userId).run();
    const carols = await session(carol, { repoUrl: 'octo/hello.world', branch: 'main', sourcePrNumber: 5 });
    assert.deepEqual([carols.gitState.repoVerified, carols.gitState.repoAccess], [false, 'pending']);
    // A private repository's PR reaches alice's session only.
    const pr = JSON.stringify({ action: 'edited', number: 5, repository: repo('octo/secret'),
      pull_request: { number: 5, title: 'Secret plans', html_url: 'https://github.com/octo/secret/pull/5', state: 'open', draft: false, merged_at: null,
        updated_at: new Date(Date.UTC(2026, 10, 4) + ++clock * 1000).toISOString() } });
    assert.equal((await deliver('pull_request', pr)).status, 200);
    assert.equal((await git(alice, alices.id)).sourcePrTitle, 'Secret plans');
    const bobGit = await git(bob, bobs.id);
    assert.deepEqual([bobGit.sourcePrState, bobGit.sourcePrTitle, bobGit.sourcePrUrl], [null, null, null]);
    // Pushes by bob and carol to the branches their sessions declare count for nobody.
    for (const [sender, name] of [[202, 'octo/secret'], [303, 'octo/hello.world']]) {
      const push = JSON.stringify({ ref: 'refs/heads/main', after: sha(), repository: repo(name), sender: { id: sender }, commits: [{ id: 'p' }] });
      assert.equal((await deliver('push', push)).body.sessionsUpdated, 0);
    }
    assert.equal((await git(bob, bobs.id)).commitCount, 0);
    assert.equal((await git(carol, carols.id)).commitCount, 0);
    // A reconciler run leaves bob refused (denied access is confirmed again daily, not each run).
    await tick();
    await until(async () => (await db.prepare('SELECT reconciled_at FROM session_git_state WHERE session_id = ?').bind(bobs.id).first()).reconciled_at, 'a reconciler run');
    assert.equal((await git(bob, bobs.id)).repoAccess, 'denied');
    // A name is not an identity: a delivery naming octo/secret with another repository's id reaches no one.
    const spoof = JSON.stringify({ ref: 'refs/heads/main', after: sha(), repository: { id: 424242, full_name: 'octo/secret' }, sender: { id: 101 }, commits: [{ id: 'q' }] });
    assert.equal((await deliver('push', spoof)).body.sessionsUpdated, 0);
    // Access taken away: the daily re-check (made due here) turns alice's session to denied, and
    // the repository's next PR update no longer reaches it.
    gh.restrict('octo/secret', []);
    await db.prepare("UPDATE session_git_state SET repo_checked_at = '2020-01-01T00:00:00.000Z' WHERE session_id = ?").bind(alices.id).run();
    await tick();
    await until(async () => (await git(alice, alices.id)).repoAccess === 'denied', 'the re-check to refuse alice');
    const later = JSON.parse(pr);
    Object.assign(later.pull_request, { title: 'After removal', updated_at: new Date(Date.UTC(2026, 10, 4) + ++clock * 1000).toISOString() });
    assert.equal((await deliver('pull_request', JSON.stringify(later))).body.sessionsUpdated, 0);
    assert.equal((await git(alice, alices.id)).sourcePrTitle, 'Secret plans');
  });

  await t.test('the reconciler corrects a PR whose webhook never came, once', async () => {
    // Alice's runner links PR #60; GitHub merges it, and the delivery is lost.
    const s = await session(alice, { repoUrl: 'octo/hello.world', branch: 'lost-hook' });
    const reviewer = await session(bob, { repoUrl: 'octo/hello.world', sourcePrNumber: 60 });
    const pr = { number: 60, title: 'Lost hook', state: 'open', draft: false, merged_at: null, html_url: 'https://github.com/octo/hello.world/pull/60',
      updated_at: '2026-11-05T00:00:00Z', user: { id: 101 }, head: { ref: 'lost-hook', repo: repo('octo/hello.world') } };
    gh.pulls.set('octo/hello.world', [...(gh.pulls.get('octo/hello.world') ?? []), pr]);
    const put = await svc.request('PUT', `/api/sessions/${s.id}/git-state`, { token: alice.token, body: { prNumber: 60 } });
    assert.equal(put.status, 200);
    await tick();
    await until(async () => (await git(alice, s.id)).prState === 'open', 'the reconciler to fill in the PR');
    assert.equal((await git(alice, s.id)).prTitle, 'Lost hook');
    Object.assign(pr, { state: 'closed', merged_at: '2026-11-06T00:00:00Z', updated_at: '2026-11-06T00:00:00Z' });
    await tick();
    await until(async () => (await git(alice, s.id)).prState === 'merged', 'the reconciler to see the merge');
    assert.equal((await git(alice, s.id)).prMergedAt, '2026-11-06T00:00:00Z');
    await until(async () => (await git(bob, reviewer.id)).sourcePrState === 'merged', 'the reviewing session to see the merge');
    const seen = await until(async () => {
      const evs = (await eventsNow(alice, s.id)).filter((e) => e.type === 'git-state' && e.data.prState === 'merged');
      return evs.length ? evs : null;
    }, 'the merge notification');
    assert.equal(seen.length, 1);
    // Merged PRs are not fetched again; nothing is notified twice.
    const calls = gh.fake.requests.filter((r) => r.path.endsWith('/pulls/60')).length;
    await tick();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(gh.fake.requests.filter((r) => r.path.endsWith('/pulls/60')).length, calls);
    assert.equal((await eventsNow(alice, s.id)).filter((e) => e.type === 'git-state' && e.data.prState === 'merged').length, 1);
    // Its own delivery records are gone.
    assert.equal((await db.prepare("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE delivery_id LIKE 'reconcile:%'").first()).n, 0);
  });

  await t.test('the reconciler never applies a PR of another repository that now has the name', async () => {
    // Alice's session verified octo/renamed (its GitHub id); the repository is then recreated
    // under the same name (a new id), and the new one has a PR #7 of its own.
    gh.addRepo('octo/renamed');
    const s = await session(alice, { repoUrl: 'octo/renamed', branch: 'b7' });
    const put = await svc.request('PUT', `/api/sessions/${s.id}/git-state`, { token: alice.token, body: { prNumber: 7 } });
    assert.equal(put.status, 200);
    const oldId = gh.repos.get('octo/renamed').id;
    gh.repos.set('octo/renamed', { ...gh.repos.get('octo/renamed'), id: oldId + 5000 });
    gh.pulls.set('octo/renamed', [{ number: 7, title: 'Someone else\'s PR', state: 'open', draft: false, merged_at: null, html_url: 'https://github.com/octo/renamed/pull/7',
      updated_at: '2026-11-07T00:00:00Z', user: { id: 999 }, head: { ref: 'x', repo: repo('octo/renamed') } }]);
    await tick();
    await until(async () => gh.fake.requests.some((r) => r.path.endsWith('/octo/renamed/pulls/7')), 'the reconciler to fetch the PR');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await git(alice, s.id)).prTitle ?? null, null, 'the other repository\'s PR was not applied');
  });

  await t.test('malformed bodies are 400; form-encoded deliveries work', async () => {
    assert.equal((await deliver('push', '{not json')).status, 400);
    const s = await session(alice, { repoUrl: 'octo/form', branch: 'f' });
    const payload = JSON.stringify({ ref: 'refs/heads/f', after: sha(), repository: repo('octo/form'), sender: { id: 101 }, commits: [{ id: 'a' }] });
    const raw = `payload=${encodeURIComponent(payload)}`;
    const r = await deliver('push', raw, { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 200);
    assert.equal((await git(alice, s.id)).commitCount, 1);
  });

  await t.test('without GITHUB_WEBHOOK_SECRET every delivery is refused', async () => {
    await svc.reconfigure({ GITHUB_WEBHOOK_SECRET: undefined });
    db = await svc.db();
    const raw = JSON.stringify({ ref: 'refs/heads/main', after: sha(), repository: repo('octo/hello.world'), sender: { id: 202 }, commits: [{ id: 'z' }] });
    const r = await deliver('push', raw);
    assert.equal(r.status, 503);
    assert.equal(r.body.code, 'WEBHOOK_NOT_CONFIGURED');
    const unsigned = await deliver('push', raw, { signature: null });
    assert.equal(unsigned.status, 503);
  });

  await t.test('payloads are not logged', () => {
    assert.ok(!svc.logs.join('').includes('Keep it logically awesome'));
  });
});
