// Authentication and the admin guard (contract §3): Bearer only, hashed lookup in
// api_tokens and auth_sessions, expiry, revocation, last_used_at; and user:create.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';

// Asynchronous, so the event loop keeps serving sockets while the CLI runs (a loop blocked for
// seconds leaves a keep-alive connection that workerd has closed, and the next request fails).
const cli = (args) => new Promise((resolve) => {
  execFile('node', args, { encoding: 'utf8' }, (err, stdout, stderr) => resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
});
import { join } from 'node:path';
import { startService } from '../lib/harness.mjs';
import { root } from '../../scripts/lib.mjs';

const UNAUTHORIZED = { error: 'Missing or invalid authentication', code: 'UNAUTHORIZED' };
const sha = (s) => createHash('sha256').update(s).digest('hex');
const iso = (offsetMs) => new Date(Date.now() + offsetMs).toISOString();

test('authentication', async (t) => {
  const svc = await startService(t);
  const member = await svc.createUser({ email: 'member@example.com', name: 'Mem Ber' });
  const admin = await svc.createUser({ email: 'admin@example.com', admin: true });
  const db = await svc.db();

  await t.test('missing, malformed and wrong tokens → 401', async () => {
    const cases = [
      {},
      { headers: { authorization: 'Basic dXNlcjpwYXNz' } },
      { headers: { authorization: 'Bearer' } },
      { headers: { authorization: 'Bearer ' } },
      { headers: { authorization: member.token } },
      { token: 'itk_not-a-real-token' },
      { token: member.token.slice(0, -1) },
    ];
    for (const c of cases) {
      const r = await svc.request('GET', '/api/me', c);
      assert.equal(r.status, 401, JSON.stringify(c));
      assert.deepEqual(r.body, UNAUTHORIZED);
    }
  });

  await t.test('a token in the query string is not accepted', async () => {
    const r = await svc.request('GET', `/api/me?token=${member.token}`);
    assert.equal(r.status, 401);
  });

  await t.test('GET /api/me returns the caller', async () => {
    const r = await svc.request('GET', '/api/me', { token: member.token });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { user: { id: member.userId, email: 'member@example.com', name: 'Mem Ber', role: 'member' } });
    const a = await svc.request('GET', '/api/me', { headers: { authorization: `bearer ${admin.token}` } });
    assert.equal(a.body.user.role, 'admin');
  });

  await t.test('expired and revoked API tokens → 401', async () => {
    const expired = 'itk_expired-token-for-tests-0000000000000000000';
    const revoked = 'itk_revoked-token-for-tests-0000000000000000000';
    const future = 'itk_future-expiry-token-for-tests-0000000000000';
    await db.batch([
      db.prepare('INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
        .bind(randomUUID(), member.userId, 'old', sha(expired), expired.slice(0, 12), iso(-1000)),
      db.prepare('INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, revoked_at) VALUES (?, ?, ?, ?, ?, ?)')
        .bind(randomUUID(), member.userId, 'revoked', sha(revoked), revoked.slice(0, 12), iso(-1000)),
      db.prepare('INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
        .bind(randomUUID(), member.userId, 'future', sha(future), future.slice(0, 12), iso(3600_000)),
    ]);
    assert.equal((await svc.request('GET', '/api/me', { token: expired })).status, 401);
    assert.equal((await svc.request('GET', '/api/me', { token: revoked })).status, 401);
    assert.equal((await svc.request('GET', '/api/me', { token: future })).status, 200);
  });

  await t.test('login session tokens authenticate until they expire', async () => {
    const live = `session-live-${randomUUID()}`;
    const dead = `session-dead-${randomUUID()}`;
    // One row in the original worker's datetime('now') format, which must still compare correctly.
    const sqliteFormat = new Date(Date.now() + 3600_000).toISOString().slice(0, 19).replace('T', ' ');
    await db.batch([
      db.prepare('INSERT INTO auth_sessions (id, user_id, token_hash, provider, expires_at) VALUES (?, ?, ?, ?, ?)')
        .bind(randomUUID(), admin.userId, sha(live), 'github', sqliteFormat),
      db.prepare('INSERT INTO auth_sessions (id, user_id, token_hash, provider, expires_at) VALUES (?, ?, ?, ?, ?)')
        .bind(randomUUID(), admin.userId, sha(dead), 'github', iso(-1)),
    ]);
    const r = await svc.request('GET', '/api/me', { token: live });
    assert.equal(r.status, 200);
    assert.equal(r.body.user.id, admin.userId);
    assert.equal((await svc.request('GET', '/api/me', { token: dead })).status, 401);
  });

  await t.test('last_used_at is recorded', async () => {
    const fresh = await svc.createUser();
    const before = await db.prepare('SELECT last_used_at FROM api_tokens WHERE user_id = ?').bind(fresh.userId).first();
    assert.equal(before.last_used_at, null);
    await svc.request('GET', '/api/me', { token: fresh.token });
    let after;
    for (let i = 0; i < 20 && !after?.last_used_at; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await db.prepare('SELECT last_used_at FROM api_tokens WHERE user_id = ?').bind(fresh.userId).first();
    }
    assert.match(after.last_used_at, /^\d{4}-\d\d-\d\dT/);
  });

  await t.test('admin guard: members get 403, admins pass, strangers 401', async () => {
    const m = await svc.request('GET', '/api/admin/users', { token: member.token });
    assert.equal(m.status, 403);
    assert.deepEqual(m.body, { error: 'Admin access required', code: 'FORBIDDEN' });
    assert.equal((await svc.request('GET', '/api/admin/users')).status, 401);
    const a = await svc.request('GET', '/api/admin/users?limit=1', { token: admin.token });
    assert.equal(a.status, 200);
    assert.equal(a.body.users.length, 1);
    assert.equal(a.body.hasMore, true);
    const next = await svc.request('GET', `/api/admin/users?limit=100&cursor=${a.body.cursor}`, { token: admin.token });
    const all = [...a.body.users, ...next.body.users].map((u) => u.email);
    assert.ok(all.includes('member@example.com') && all.includes('admin@example.com'));
    assert.equal(new Set(all).size, all.length, 'pages do not overlap');
  });

  await t.test('npm run user:create prints one JSON line whose token authenticates', async () => {
    const script = join(root, 'scripts', 'user-create.mjs');
    const r = await cli([script, '--email', 'Cli.User@Example.com', '--name', 'Cli', '--admin', '--persist-to', svc.dir]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const { userId, token } = JSON.parse(lines[0]);
    assert.match(token, /^itk_[A-Za-z0-9_-]{43}$/);
    const me = await svc.request('GET', '/api/me', { token });
    assert.equal(me.status, 200);
    assert.deepEqual(me.body.user, { id: userId, email: 'cli.user@example.com', name: 'Cli', role: 'admin' });
    // Running it again finds the same user and mints another token.
    const again = JSON.parse((await cli([script, '--email', 'cli.user@example.com', '--persist-to', svc.dir])).stdout);
    assert.equal(again.userId, userId);
    assert.notEqual(again.token, token);
    const bad = await cli([script, '--email', 'not-an-email', '--persist-to', svc.dir]);
    assert.notEqual(bad.status, 0);
    assert.equal(bad.stdout, '');
  });

  await t.test('the daily cron purges what can no longer authenticate, and keeps the rest', async () => {
    const old = '2000-01-01T00:00:00.000Z';
    const recent = iso(-24 * 3600_000);
    await db.batch([
      db.prepare('INSERT INTO auth_sessions (id, user_id, token_hash, provider, expires_at) VALUES (?, ?, ?, ?, ?)').bind('purge-session', member.userId, sha('p1'), 'github', old),
      db.prepare('INSERT INTO api_tokens (id, user_id, name, token_hash, revoked_at) VALUES (?, ?, ?, ?, ?)').bind('purge-token', member.userId, 'old', sha('p2'), old),
      db.prepare('INSERT INTO api_tokens (id, user_id, name, token_hash, revoked_at) VALUES (?, ?, ?, ?, ?)').bind('keep-token', member.userId, 'recent', sha('p3'), recent),
      db.prepare("INSERT INTO oauth_states (state_hash, purpose, redirect_uri, expires_at) VALUES ('purge-state', 'login:github', 'x', ?)").bind(old),
      db.prepare("INSERT INTO webhook_deliveries (provider, delivery_id, received_at) VALUES ('github', 'purge-delivery', ?)").bind(old),
      db.prepare("INSERT INTO webhook_deliveries (provider, delivery_id, received_at) VALUES ('github', 'keep-delivery', ?)").bind(recent),
      db.prepare("INSERT INTO integrations (id, user_id, service, config, status) VALUES ('purge-integ', ?, 'github', '{}', 'active')").bind(member.userId),
      db.prepare("INSERT INTO sync_logs (id, integration_id, status, started_at, completed_at) VALUES ('purge-log', 'purge-integ', 'completed', ?, ?)").bind(old, old),
      db.prepare("INSERT INTO sync_logs (id, integration_id, status, started_at, completed_at) VALUES ('keep-log', 'purge-integ', 'failed', ?, ?)").bind(recent, recent),
    ]);
    await (await svc.mf.getWorker()).scheduled({ cron: '0 3 * * *' });
    const left = async (sql) => (await db.prepare(sql).all()).results.map((r) => r.id);
    assert.deepEqual(await left("SELECT id FROM auth_sessions WHERE id = 'purge-session'"), []);
    assert.deepEqual(await left("SELECT id FROM api_tokens WHERE id IN ('purge-token', 'keep-token')"), ['keep-token']);
    assert.deepEqual(await left("SELECT state_hash AS id FROM oauth_states WHERE state_hash = 'purge-state'"), []);
    assert.deepEqual(await left("SELECT delivery_id AS id FROM webhook_deliveries WHERE delivery_id IN ('purge-delivery', 'keep-delivery')"), ['keep-delivery']);
    assert.deepEqual(await left("SELECT id FROM sync_logs WHERE integration_id = 'purge-integ'"), ['keep-log']);
    // (Long-deleted entities are purged by each integration's own object, on its alarm.)
    // Live credentials are untouched.
    assert.equal((await svc.request('GET', '/api/me', { token: member.token })).status, 200);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
