// Chaos: the whole local service (wrangler and its workerd processes) is killed with SIGKILL in
// the middle of a sync of 3,000 GitHub issues, then started again on the same state. The minute
// cron (fired here every two seconds) must find the run whose chain of queue messages died with
// the process, start exactly one new chain, and the run must finish with every repository and
// issue stored exactly once. The test-variant worker logs each sync slice with its chain, which
// is how duplicate chains would show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root, toolEnv } from '../../scripts/lib.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { TEST_KEY, knownSecrets } from '../lib/harness.mjs';

const WRANGLER = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `wrangler dev` of the test build on `port`, in a process group of its own. */
function startWrangler(dir, config, port, vars) {
  const args = [WRANGLER, 'dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', dir,
    '--test-scheduled', '--log-level', 'log', '--show-interactive-dev-session=false'];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const child = spawn('node', args, { cwd: root, env: toolEnv({ CI: '1', SKIP_WORKER_BUILD: '1' }), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const w = { child, url: `http://127.0.0.1:${port}`, out: '' };
  child.stdout.on('data', (d) => { w.out += d; });
  child.stderr.on('data', (d) => { w.out += d; });
  w.ready = (async () => {
    for (let i = 0; i < 600; i++) {
      if (child.exitCode !== null) throw new Error(`wrangler dev exited: ${w.out.slice(-2000)}`);
      try { if ((await fetch(`${w.url}/health`)).status === 200) return; } catch {}
      await sleep(100);
    }
    throw new Error(`wrangler dev did not start: ${w.out.slice(-2000)}`);
  })();
  w.kill = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} };
  return w;
}

/** The slices the worker logged: `{run, chain, outcome}`. */
const slices = (out) => [...out.matchAll(/\[test\] sync slice run=(\S+) chain=(\d+) outcome=(\w+)/g)]
  .map((m) => ({ run: m[1], chain: Number(m[2]), outcome: m[3] }));

test('a service killed with SIGKILL mid-sync recovers with one chain and every entity exactly once', async (t) => {
  const gh = await startFakeGitHub(t);
  const TOKEN = 'gho_chaos_token_00000000000000000000';
  knownSecrets.add(TOKEN);
  gh.addUser(TOKEN, { id: 51, login: 'chaos' });
  for (const r of ['chaos/a', 'chaos/b', 'chaos/c']) {
    gh.addRepo(r);
    gh.addIssues(r, 1000);
  }
  // Every page of issues takes a while, as GitHub's do: the sync runs for several seconds.
  gh.fake.fault(/\/issues$/, { delayMs: 120 }, 100_000);

  mkdirSync(join(root, '.test-state'), { recursive: true });
  const dir = mkdtempSync(join(root, '.test-state', 'chaos-'));
  const wranglers = [];
  t.after(() => { for (const w of wranglers) w.kill(); rmSync(dir, { recursive: true, force: true }); });
  const config = join(dir, 'wrangler.toml');
  writeFileSync(config, readFileSync(join(root, 'wrangler.toml'), 'utf8')
    .replace(/^main = .*$/m, `main = ${JSON.stringify(join(root, 'build-test', 'index.js'))}`)
    .replace(/^migrations_dir = .*$/m, `migrations_dir = ${JSON.stringify(join(root, 'migrations'))}`)
    .replace(/^directory = .*$/m, `directory = ${JSON.stringify(join(root, 'console', 'dist'))}`));
  const created = spawnSync('node', [join(root, 'scripts', 'user-create.mjs'), '--email', 'chaos@example.com', '--persist-to', dir], { encoding: 'utf8', env: toolEnv({ CI: '1' }) });
  assert.equal(created.status, 0, created.stderr);
  const { token } = JSON.parse(created.stdout);
  knownSecrets.add(token);
  const vars = { ENCRYPTION_KEY: TEST_KEY, GITHUB_API_URL: gh.api, GITHUB_WEB_URL: gh.web, SYNC_REQUEST_BUDGET: '45', SYNC_LEASE_SECONDS: '8', JOB_RETRY_BASE_SECONDS: '1' };
  const api = async (w, method, path, body) => {
    const r = await fetch(w.url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    return { status: r.status, body: await r.json() };
  };

  const first = startWrangler(dir, config, 8871, vars);
  wranglers.push(first);
  await first.ready;
  const integ = await api(first, 'POST', '/api/integrations', { service: 'github', credentials: { access_token: TOKEN }, config: { syncFrequency: 'manual', entities: ['repositories', 'issues'] } });
  assert.equal(integ.status, 201, JSON.stringify(integ.body));
  const id = integ.body.integration.id;
  const started = await api(first, 'POST', `/api/integrations/${id}/sync`, { fullSync: true });
  assert.equal(started.status, 202);
  const runId = started.body.syncId;
  const status = async (w) => (await api(w, 'GET', `/api/integrations/${id}/sync/${runId}`)).body;
  let before;
  for (let i = 0; i < 600; i++) {
    before = await status(first);
    if (before.progress >= 800) break;
    await sleep(50);
  }
  assert.equal(before.status, 'running', JSON.stringify(before));
  assert.ok(before.progress >= 800 && before.progress < 3003, `killed mid-run at ${before.progress}`);
  first.kill();
  await new Promise((r) => (first.child.exitCode !== null ? r() : first.child.once('exit', r)));

  const second = startWrangler(dir, config, 8872, vars);
  wranglers.push(second);
  await second.ready;
  const t0 = performance.now();
  let done;
  for (let i = 0; i < 150; i++) {
    await fetch(`${second.url}/__scheduled?cron=${encodeURIComponent('* * * * *')}`);
    done = await status(second);
    if (done.status !== 'running' && done.status !== 'pending') break;
    await sleep(2000);
  }
  const recoverySeconds = (performance.now() - t0) / 1000;
  assert.equal(done.status, 'completed', JSON.stringify(done));
  t.diagnostic(`killed at ${before.progress} of 3003 entities; recovered and completed ${recoverySeconds.toFixed(1)} s after the restart`);

  // Every repository and issue exactly once.
  const ids = [];
  let cursor;
  do {
    const r = await api(second, 'GET', `/api/integrations/${id}/entities/issues?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    ids.push(...r.body.entities.map((e) => e.id));
    cursor = r.body.hasMore ? r.body.cursor : undefined;
  } while (cursor);
  assert.equal(ids.length, 3000);
  assert.equal(new Set(ids).size, 3000);
  assert.equal(done.result.recordsSynced, 3003, 'each page counted once');

  // One chain after the restart: every slice that ran belongs to it, and nothing keeps running.
  await sleep(3000);
  const after = slices(second.out).filter((s) => s.run === runId);
  const ran = after.filter((s) => s.outcome !== 'NotClaimed');
  const chains = new Set(ran.map((s) => s.chain));
  assert.equal(chains.size, 1, `slices of one chain after the restart: ${JSON.stringify([...chains])}; output: ${second.out.slice(-3000)}`);
  assert.ok([...chains][0] >= 1, 'the cron started a new chain (the first died with the process)');
  t.diagnostic(`slices after the restart: ${ran.length} (${after.length - ran.length} refused)`);
  const count = after.length;
  await sleep(3000);
  assert.equal(slices(second.out).filter((s) => s.run === runId).length, count, 'no message of the finished run is still going round');
  for (const secret of knownSecrets) assert.ok(!second.out.includes(secret) && !first.out.includes(secret), 'no secret in the log');
});
