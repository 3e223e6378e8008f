// `npm run bench`: the performance report. Builds the release worker, runs it with
// `wrangler dev` on 127.0.0.1 (local D1 and Durable Objects) against local fake upstreams,
// and prints a table (also written to bench/results.json). Everything it starts, it stops.
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { setup } from '../scripts/setup.mjs';
import { build } from '../scripts/build.mjs';
import { root, toolEnv, log } from '../scripts/lib.mjs';
import { FakeUpstream } from '../tests/lib/fake-upstream.mjs';
import { startFakeGitHubOn } from '../tests/lib/fake-github.mjs';
import { startFakeTelegramOn } from '../tests/lib/fake-telegram.mjs';
import { benchSync } from './sync.mjs';
import { benchSearch, benchMcp } from './search.mjs';

const WRANGLER = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const HOOK_SECRET = 'bench-webhook-secret';
const BOT = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const GH_TOKEN = 'gho_bench_user_token_000000000000000';
const stateRoot = join(root, '.test-state');
const children = new Set();
const cleanup = () => { for (const c of children) { try { process.kill(-c.pid, 'SIGKILL'); } catch {} } };
process.on('exit', cleanup);
process.on('SIGINT', () => { cleanup(); process.exit(130); });

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const median = (xs) => pct(xs, 50);
const ms = (x) => Number(x.toFixed(2));

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get(url, { headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0 }));
    });
    req.on('error', reject);
  });
}

function call(method, url, { token, body, headers = {} } = {}) {
  return fetch(url, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, body: body ? JSON.stringify(body) : undefined })
    .then(async (r) => ({ status: r.status, body: await r.json().catch(() => null) }));
}

/** A fresh state directory with migrations applied and a user token. */
function prepareState() {
  mkdirSync(stateRoot, { recursive: true });
  const dir = mkdtempSync(join(stateRoot, 'bench-'));
  const r = spawnSync('node', [join(root, 'scripts', 'user-create.mjs'), '--email', 'bench@example.com', '--admin', '--persist-to', dir], { encoding: 'utf8', env: toolEnv({ CI: '1' }) });
  if (r.status !== 0) throw new Error(`user:create failed: ${r.stderr}`);
  return { dir, token: JSON.parse(r.stdout).token };
}

/** Starts `wrangler dev`; resolves when it prints Ready, with timings. */
function startWrangler(dir, port, vars) {
  const args = [WRANGLER, 'dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', dir, '--log-level', 'warn', '--show-interactive-dev-session=false'];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const t0 = performance.now();
  const child = spawn('node', args, { cwd: root, env: toolEnv({ CI: '1', SKIP_WORKER_BUILD: '1' }), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const ready = new Promise((resolve, reject) => {
    const onData = (d) => { out += d; };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`wrangler dev exited (${code}): ${out.slice(-2000)}`)));
    const poll = async () => {
      try {
        const r = await get(`http://127.0.0.1:${port}/health`);
        if (r.status === 200) return resolve({ firstOkMs: performance.now() - t0 });
      } catch {}
      setTimeout(poll, 25);
    };
    poll();
  });
  return { child, ready, stop: () => new Promise((res) => { child.once('exit', res); try { process.kill(-child.pid, 'SIGTERM'); } catch { res(); } setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} res(); }, 3000); }).then(() => children.delete(child)) };
}

/** The workerd process under a wrangler process. */
function workerdPid(rootPid) {
  const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      return { pid: Number(d), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8') };
    } catch { return null; }
  }).filter(Boolean);
  const desc = new Set([rootPid]);
  let grew = true;
  while (grew) { grew = false; for (const p of procs) if (desc.has(p.ppid) && !desc.has(p.pid)) { desc.add(p.pid); grew = true; } }
  return procs.find((p) => desc.has(p.pid) && p.cmd.includes('workerd'))?.pid;
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}

async function load(name, url, opts, pid) {
  const before = cpuTicks(pid);
  const r = await autocannon({ url, connections: 20, duration: 5, ...opts });
  const ticks = cpuTicks(pid) - before;
  const ok = r.requests.total - r.non2xx - r.errors;
  const hz = 100; // USER_HZ on Linux
  return {
    scenario: name, reqPerSec: Math.round(r.requests.average), p50Ms: r.latency.p50, p99Ms: r.latency.p99,
    errors: r.errors + r.timeouts, non2xx: r.non2xx, requests: r.requests.total,
    workerCpuMsPerReq: ms((ticks * (1000 / hz)) / Math.max(1, ok)),
  };
}

async function main() {
  setup();
  build({ ifNeeded: true });
  const results = { date: new Date().toISOString(), machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30) }, versions: {} };
  results.versions = { node: process.version, wrangler: JSON.parse(readFileSync(join(root, 'node_modules/wrangler/package.json'))).version, worker: '0.8.7' };

  log('upload size (wrangler deploy --dry-run)');
  const dry = spawnSync('node', [join(root, 'scripts', 'deploy.mjs'), '--dry-run'], { encoding: 'utf8', env: toolEnv() });
  const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(`${dry.stdout}${dry.stderr}`);
  results.upload = { rawKiB: Number(m?.[1]), gzipKiB: Number(m?.[2]) };

  // Fakes for GitHub and Telegram, shared by every launch.
  const ghFake = await new FakeUpstream('github').start();
  const gh = startFakeGitHubOn(ghFake);
  gh.addUser(GH_TOKEN, { id: 4242, login: 'bench' });
  gh.addRepo('bench/app');
  const tgFake = await new FakeUpstream('telegram').start();
  const tg = startFakeTelegramOn(tgFake);
  tg.addBot(BOT, 123456789, 'bench_bot');
  const vars = {
    ENCRYPTION_KEY: 'Bn4Cm8Xv2Zq6Lw1Rt9Ks3Hd7Jf5Gp0Ye4Ui8Oa2Pl6M', GITHUB_API_URL: gh.api, GITHUB_WEB_URL: gh.web,
    TELEGRAM_API_URL: tg.url, GITHUB_WEBHOOK_SECRET: HOOK_SECRET, PUBLIC_URL: 'https://bench.example.com',
  };

  log('cold start: 5 fresh launches');
  const cold = [];
  for (let i = 0; i < 5; i++) {
    const { dir, token } = prepareState();
    const w = startWrangler(dir, 8900 + i, vars);
    const { firstOkMs } = await w.ready;
    const h = await get(`http://127.0.0.1:${8900 + i}/health`);
    const a = await get(`http://127.0.0.1:${8900 + i}/api/integrations`, { authorization: `Bearer ${token}` });
    cold.push({ firstOkMs, healthMs: h.ms, integrationsMs: a.ms, status: a.status });
    await w.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  results.coldStart = {
    launchToFirstHealthMs: ms(median(cold.map((c) => c.firstOkMs))),
    firstRequestHealthMs: ms(median(cold.map((c) => c.healthMs))),
    firstRequestIntegrationsMs: ms(median(cold.map((c) => c.integrationsMs))),
  };

  log('steady latency and load');
  const { dir, token } = prepareState();
  const port = 8911;
  const base = `http://127.0.0.1:${port}`;
  const w = startWrangler(dir, port, vars);
  await w.ready;
  try {
    const auth = { authorization: `Bearer ${token}` };
    const pid = workerdPid(w.child.pid);
    // Arrange: a GitHub integration and token, a session on a branch, a Telegram bot bound to it.
    await call('PUT', `${base}/api/me/github-token`, { token, body: { token: GH_TOKEN } });
    await call('POST', `${base}/api/integrations`, { token, body: { service: 'github', credentials: { access_token: GH_TOKEN }, config: { syncFrequency: 'manual' } } });
    const session = (await call('POST', `${base}/api/sessions`, { token, body: { workspace: 'bench', repoUrl: 'bench/app', branch: 'main' } })).body.session;
    const tgSetup = await call('POST', `${base}/api/me/telegram`, { token, body: { botToken: BOT } });
    const me = (await call('GET', `${base}/api/me`, { token })).body.user.id;
    // Pair the bench's Telegram user (id 1) with the bot.
    await call('POST', `${base}/telegram/webhook/${me}`, {
      body: { update_id: 0, message: { message_id: 0, date: 1, chat: { id: 777, type: 'private' }, from: { id: 1, first_name: 'B' }, text: `/start ${tgSetup.body.pairingCode}` } },
      headers: { 'x-telegram-bot-api-secret-token': tg.webhooks.get(BOT)?.secret_token },
    });
    await call('POST', `${base}/api/channels/bindings`, { token, body: { sessionId: session.id, channelType: 'telegram', channelId: '777' } });
    const secret = tg.webhooks.get(BOT)?.secret_token;

    const steady = {};
    for (const [name, path, headers] of [['health', '/health', {}], ['integrations', '/api/integrations', auth]]) {
      const lat = [];
      for (let i = 0; i < 100; i++) lat.push((await get(base + path, headers)).ms);
      steady[name] = { p50Ms: ms(pct(lat, 50)), p90Ms: ms(pct(lat, 90)) };
    }
    results.steady = steady;

    const commits = Array.from({ length: 18 }, (_, i) => ({ id: `c${i}`.padEnd(40, '0'), message: `Commit ${i}: `.padEnd(220, 'x'), timestamp: '2026-11-01T00:00:00Z', author: { name: 'Bench', email: 'b@example.com' } }));
    const push = JSON.stringify({ ref: 'refs/heads/main', after: 'c17'.padEnd(40, '0'), repository: { id: 1000, full_name: 'bench/app' }, sender: { id: 4242, login: 'bench' }, commits });
    const pushSig = `sha256=${createHmac('sha256', HOOK_SECRET).update(push).digest('hex')}`;
    let updateId = 1;
    results.pushPayloadBytes = push.length;
    results.load = [];
    if (!pid) throw new Error('workerd process not found');
    results.load.push(await load('GET /health', `${base}/health`, {}, pid));
    results.load.push(await load('GET /api/integrations', `${base}/api/integrations`, { headers: auth }, pid));
    results.load.push(await load('POST /webhooks/github (push, ~7.5 KB)', `${base}/webhooks/github`, {
      method: 'POST', body: push,
      requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': pushSig } }) }],
    }, pid));
    results.load.push(await load('POST /telegram/webhook (text → bound session)', `${base}/telegram/webhook/${(await call('GET', `${base}/api/me`, { token })).body.user.id}`, {
      method: 'POST',
      requests: [{ setupRequest: (req) => {
        const id = updateId++;
        return { ...req, headers: { ...req.headers, 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret }, body: JSON.stringify({ update_id: id, message: { message_id: id, date: 1, chat: { id: 777, type: 'private' }, from: { id: 1, first_name: 'B' }, text: `hello ${id}` } }) };
      } }],
    }, pid));
    results.load.push(await load('POST /api/prompt', `${base}/api/prompt`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ content: 'bench prompt', channelType: 'web', channelId: session.id }),
    }, pid));
  } finally {
    await w.stop();
    rmSync(dir, { recursive: true, force: true });
    await ghFake.stop();
    await tgFake.stop();
  }

  log('sync benchmark: 10,000 issues through the queue (default budget 45, and 1000); then search and MCP over them');
  results.sync = await benchSync({ budget: '45' });
  const { after, ...syncPaid } = await benchSync({
    budget: '1000',
    after: async (ctx) => ({ search: await benchSearch(ctx), mcp: await benchMcp(ctx) }),
  });
  results.syncPaid = syncPaid;
  results.search = after.search;
  results.mcp = after.mcp;

  writeFileSync(join(root, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n');
  const rows = [
    ['upload raw / gzip', `${results.upload.rawKiB} / ${results.upload.gzipKiB} KiB`, 'gzip ≤ 400 KiB'],
    ['launch → first 200 /health (median of 5)', `${results.coldStart.launchToFirstHealthMs} ms`, '≤ 0.9–1.2 s'],
    ['first request after ready: /health, /api/integrations', `${results.coldStart.firstRequestHealthMs} ms, ${results.coldStart.firstRequestIntegrationsMs} ms`, '≤ 12 ms, ≤ 17.5 ms'],
    ['steady p50/p90 /health', `${results.steady.health.p50Ms} / ${results.steady.health.p90Ms} ms`, ''],
    ['steady p50/p90 /api/integrations', `${results.steady.integrations.p50Ms} / ${results.steady.integrations.p90Ms} ms`, 'p50 ≤ 6 ms'],
    ...results.load.map((l) => [`load: ${l.scenario}`, `${l.reqPerSec} req/s, p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, ${l.errors + l.non2xx} errors, worker CPU ${l.workerCpuMsPerReq} ms/req`, '']),
    ['sync 10,000 issues, budget 45', `${results.sync.wallSeconds} s, ${results.sync.entitiesPerSecond} entities/s, ${results.sync.invocations} consumer invocations, workerd peak RSS ${results.sync.workerdPeakRssMiB} MiB`, ''],
    ['sync 10,000 issues, budget 1000', `${results.syncPaid.wallSeconds} s, ${results.syncPaid.entitiesPerSecond} entities/s, ${results.syncPaid.invocations} consumer invocations, workerd peak RSS ${results.syncPaid.workerdPeakRssMiB} MiB`, ''],
    ...['selective', 'prefix', 'broad'].map((k) => [`search over 10,000 issues: ${k} query p50/p99`, `${results.search[k].p50Ms} / ${results.search[k].p99Ms} ms`, '']),
    ['MCP tools/list + one tools/call p50/p99', `${results.mcp.roundTrip.p50Ms} / ${results.mcp.roundTrip.p99Ms} ms (list ${results.mcp.toolsList.p50Ms} / ${results.mcp.toolsList.p99Ms}, call ${results.mcp.toolsCall.p50Ms} / ${results.mcp.toolsCall.p99Ms}; ${results.mcp.tools} tools)`, ''],
  ];
  const w1 = Math.max(...rows.map((r) => r[0].length));
  const w2 = Math.max(...rows.map((r) => r[1].length));
  console.log(`\nMachine: ${results.machine.cpu}, ${results.machine.cores} cores; wrangler ${results.versions.wrangler}, node ${results.versions.node}\n`);
  console.log(`${'figure'.padEnd(w1)}  ${'measured'.padEnd(w2)}  target`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c}`);
  cleanup();
}

main().then(() => process.exit(0), (e) => { console.error(e); cleanup(); process.exit(1); });
