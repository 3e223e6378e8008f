// `npm run bench`: the performance report. Builds the release worker and the floor worker
// (`bench/floor`, the smallest workers-rs worker answering JSON, same toolchain recipe), runs
// each with `wrangler dev` on 127.0.0.1 (local D1 and Durable Objects) against local fake
// upstreams, and prints a table (also written to bench/results.json). Everything it starts, it
// stops. `npm run bench -- --baseline <dir>` also runs the load scenarios against another
// build (a `build/` kept from before a change), in the same run, for before/after figures.
//
// CPU is read per process from /proc/<pid>/stat (utime + stime) before and after a fixed
// number of requests: the workerd holding `entry=127.0.0.1:<port>` (wrangler's proxy in front),
// the other workerd (the one running the worker: the figure the targets are on), and
// wrangler's Node process.
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { setup } from '../scripts/setup.mjs';
import { build, compile } from '../scripts/build.mjs';
import { root, toolEnv, log } from '../scripts/lib.mjs';
import { FakeUpstream } from '../tests/lib/fake-upstream.mjs';
import { startFakeGitHubOn } from '../tests/lib/fake-github.mjs';
import { startFakeTelegramOn } from '../tests/lib/fake-telegram.mjs';
import { startFakeGoogle } from '../tests/lib/fake-google.mjs';
import { addGmail } from '../tests/lib/fake-gmail.mjs';
import { benchSync } from './sync.mjs';
import { benchSearch, benchMcp } from './search.mjs';
import { benchOAuth } from './oauth.mjs';
import { benchScale, benchCapacity } from './scale.mjs';
import { benchRealtime } from './realtime.mjs';

const WRANGLER = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const HOOK_SECRET = 'bench-webhook-secret';
const BOT = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const GH_TOKEN = 'gho_bench_user_token_000000000000000';
const stateRoot = join(root, '.test-state');
const children = new Set();
export const cleanup = () => { for (const c of children) { try { process.kill(-c.pid, 'SIGKILL'); } catch {} } };
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

export function call(method, url, { token, body, headers = {} } = {}) {
  return fetch(url, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, body: body ? JSON.stringify(body) : undefined })
    .then(async (r) => ({ status: r.status, body: await r.json().catch(() => null) }));
}

/** A fresh state directory with migrations applied and a user token. */
export function prepareState() {
  mkdirSync(stateRoot, { recursive: true });
  const dir = mkdtempSync(join(stateRoot, 'bench-'));
  const r = spawnSync('node', [join(root, 'scripts', 'user-create.mjs'), '--email', 'bench@example.com', '--admin', '--persist-to', dir], { encoding: 'utf8', env: toolEnv({ CI: '1' }) });
  if (r.status !== 0) throw new Error(`user:create failed: ${r.stderr}`);
  return { dir, token: JSON.parse(r.stdout).token };
}

/** Starts `wrangler dev` (with `config`, the service's wrangler.toml unless given); resolves
 * `ready` when `path` answers 200. */
export function startWrangler(dir, port, vars, { config, path = '/health', inspectorPort } = {}) {
  const args = [WRANGLER, 'dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', dir, '--log-level', 'warn', '--show-interactive-dev-session=false'];
  if (config) args.push('--config', config);
  if (inspectorPort) args.push('--inspector-port', String(inspectorPort));
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
        const r = await get(`http://127.0.0.1:${port}${path}`);
        if (r.status === 200) return resolve({ firstOkMs: performance.now() - t0 });
      } catch {}
      setTimeout(poll, 25);
    };
    poll();
  });
  return { child, port, ready, stop: () => new Promise((res) => { child.once('exit', res); try { process.kill(-child.pid, 'SIGTERM'); } catch { res(); } setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} res(); }, 3000); }).then(() => children.delete(child)) };
}

function processes() {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      return { pid: Number(d), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0') };
    } catch { return null; }
  }).filter(Boolean);
}

/** The three processes of a `wrangler dev` (rooted at `rootPid`, serving `port`): `entry`, the
 * workerd with the `entry=127.0.0.1:<port>` socket (wrangler's proxy worker); `worker`, the other
 * workerd (runs our Worker, its D1 and Durable Objects); `node`, wrangler's CLI process (the
 * parent of both workerds). */
function wranglerProcesses(rootPid, port) {
  const procs = processes();
  const desc = new Set([rootPid]);
  let grew = true;
  while (grew) { grew = false; for (const p of procs) if (desc.has(p.ppid) && !desc.has(p.pid)) { desc.add(p.pid); grew = true; } }
  const workerds = procs.filter((p) => desc.has(p.pid) && p.cmd[0].endsWith('workerd'));
  const entry = workerds.find((p) => p.cmd.includes(`--socket-addr=entry=127.0.0.1:${port}`));
  const worker = workerds.find((p) => p !== entry);
  if (!entry || !worker) throw new Error(`workerd processes of port ${port} not found (${workerds.map((p) => p.cmd.join(' ')).join('; ')})`);
  return { entry: entry.pid, worker: worker.pid, node: worker.ppid };
}

const HZ = 100; // USER_HZ on Linux: /proc/<pid>/stat counts CPU in 10 ms ticks
function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}
const cpuOf = (procs) => Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuTicks(pid)]));

/** One round of a scenario: `amount` requests (after `warmup`) over 10 connections, with the
 * CPU ticks of each process over them. */
async function round(url, opts, procs, { amount, warmup }) {
  if (warmup) await autocannon({ url, connections: 10, amount: warmup, ...opts });
  const before = cpuOf(procs);
  const r = await autocannon({ url, connections: 10, amount, ...opts });
  const after = cpuOf(procs);
  return { r, ticks: Object.fromEntries(Object.keys(procs).map((k) => [k, after[k] - before[k]])) };
}

/** A scenario's figures over its rounds: CPU per process per successful request (ticks summed
 * over every round), throughput and latency of the rounds' median. */
function combine(name, rounds) {
  const ok = rounds.reduce((n, { r }) => n + r.requests.total - r.non2xx - r.errors, 0);
  const per = (k) => ms((rounds.reduce((t, x) => t + x.ticks[k], 0) * (1000 / HZ)) / Math.max(1, ok));
  const cpu = { worker: per('worker'), entry: per('entry'), node: per('node') };
  const mid = (f) => median(rounds.map(({ r }) => f(r)));
  return {
    scenario: name, rounds: rounds.length, requests: rounds.reduce((n, { r }) => n + r.requests.total, 0),
    reqPerSec: Math.round(mid((r) => r.requests.average)), p50Ms: mid((r) => r.latency.p50), p99Ms: mid((r) => r.latency.p99),
    errors: rounds.reduce((n, { r }) => n + r.errors + r.timeouts, 0), non2xx: rounds.reduce((n, { r }) => n + r.non2xx, 0),
    cpuMsPerReq: cpu, cpuMsPerReqByRound: rounds.map((x) => ms((x.ticks.worker * (1000 / HZ)) / Math.max(1, x.r.requests.total - x.r.non2xx - x.r.errors))),
  };
}

async function load(name, url, opts, procs, { amount = 2000, warmup = 300, rounds = 2 } = {}) {
  const done = [];
  for (let i = 0; i < rounds; i++) done.push(await round(url, opts, procs, { amount, warmup: i === 0 ? warmup : 0 }));
  const out = combine(name, done);
  log(`  ${name}: worker CPU ${out.cpuMsPerReq.worker} ms/req`);
  return out;
}

/** Raw and gzip bytes of each section of a Wasm module (what the upload is made of). */
export function wasmSections(file) {
  const buf = readFileSync(file);
  let p = 8;
  const leb = () => { let r = 0, sh = 0, b; do { b = buf[p++]; r |= (b & 0x7f) << sh; sh += 7; } while (b & 0x80); return r >>> 0; };
  const names = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export', 'start', 'element', 'code', 'data', 'datacount'];
  const out = {};
  while (p < buf.length) {
    const id = buf[p++];
    const len = leb();
    const name = names[id] ?? `section${id}`;
    const bytes = buf.subarray(p, p + len);
    out[name] = { rawKiB: ms(len / 1024), gzipKiB: ms(gzipSync(bytes, { level: 9 }).length / 1024) };
    p += len;
  }
  return out;
}

/** The floor worker's build: `bench/floor` compiled with the service's recipe when its sources changed. */
function buildFloor() {
  const crateDir = join(root, 'bench', 'floor');
  const out = join(crateDir, 'build');
  const wasm = join(out, 'index_bg.wasm');
  const newest = Math.max(...['Cargo.toml', 'Cargo.lock', 'src/lib.rs'].map((f) => statSync(join(crateDir, f)).mtimeMs));
  let fresh = false;
  try { fresh = statSync(wasm).mtimeMs >= newest; } catch {}
  if (fresh) return log('floor worker build is up to date');
  log('building the floor worker (bench/floor, same recipe)');
  compile({ crateDir, outDir: out, targetDir: join(crateDir, 'target') });
}

/** Whether a build has the data plane (builds from before it have no IntegrationData class). */
export const hasDataPlane = (buildDir) => readFileSync(join(buildDir, 'index.js'), 'utf8').includes('IntegrationData');

/** The service's wrangler.toml with `main` pointing at another build (for `--baseline`); a build
 * from before the data plane gets the configuration it knew (no IntegrationData binding). */
export function configFor(buildDir) {
  let text = readFileSync(join(root, 'wrangler.toml'), 'utf8').replace(/^main = .*$/m, `main = ${JSON.stringify(join(buildDir, 'index.js'))}`);
  if (!hasDataPlane(buildDir)) {
    text = text.replace(/\[\[durable_objects\.bindings\]\]\nname = "INTEGRATION_DATA"\nclass_name = "IntegrationData"\n/, '')
      .replace(/(#[^\n]*\n)*\[\[migrations\]\]\ntag = "v2"\nnew_sqlite_classes = \["IntegrationData"\]\n/, '');
  }
  const file = join(root, '.bench-baseline.wrangler.toml');
  writeFileSync(file, text);
  return file;
}

/** The floor's /health-equivalent under the same load as the service's `/health`. */
async function benchFloor() {
  mkdirSync(stateRoot, { recursive: true });
  const dir = mkdtempSync(join(stateRoot, 'floor-'));
  const port = 8930;
  const w = startWrangler(dir, port, {}, { config: join(root, 'bench', 'floor', 'wrangler.toml'), path: '/' });
  try {
    await w.ready;
    const procs = wranglerProcesses(w.child.pid, port);
    const lat = [];
    for (let i = 0; i < 100; i++) lat.push((await get(`http://127.0.0.1:${port}/`)).ms);
    const loadResult = await load('floor: GET / (minimal workers-rs JSON)', `http://127.0.0.1:${port}/`, {}, procs);
    loadResult.note = 'same load as GET /health: 2 rounds of 2,000 after 300 to warm up';
    // The same answer after one D1 round trip and after one Durable Object round trip: what the
    // runtime charges for the round trips a route makes, before any of our code runs.
    const d1Lat = [];
    for (let i = 0; i < 100; i++) d1Lat.push((await get(`http://127.0.0.1:${port}/d1`)).ms);
    const d1 = await load('floor: GET /d1 (one D1 statement)', `http://127.0.0.1:${port}/d1`, {}, procs);
    d1.steady = { p50Ms: ms(pct(d1Lat, 50)), p90Ms: ms(pct(d1Lat, 90)) };
    const durable = await load('floor: GET /do (one Durable Object fetch)', `http://127.0.0.1:${port}/do`, {}, procs);
    return { steady: { p50Ms: ms(pct(lat, 50)), p90Ms: ms(pct(lat, 90)) }, load: loadResult, d1, durable };
  } finally {
    await w.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts one build (`config`: its wrangler.toml, the service's when absent) on `port` and
 * arranges its state; answers its scenarios, not yet run. `fakes` are shared. */
async function arrange(fakes, { config, port, label }) {
  const { dir, token } = prepareState();
  const base = `http://127.0.0.1:${port}`;
  const w = startWrangler(dir, port, fakes.vars, { config, inspectorPort: port + 1000 });
  await w.ready;
  const auth = { authorization: `Bearer ${token}` };
  const procs = wranglerProcesses(w.child.pid, port);
  // Arrange: a GitHub integration and token, a session on a branch, a Telegram bot bound to
  // it, a Gmail integration.
  await call('PUT', `${base}/api/me/github-token`, { token, body: { token: GH_TOKEN } });
  const ghInteg = await call('POST', `${base}/api/integrations`, { token, body: { service: 'github', credentials: { access_token: GH_TOKEN }, config: { syncFrequency: 'manual' } } });
  if (ghInteg.status !== 201) throw new Error(`github integration: ${JSON.stringify(ghInteg.body)}`);
  const session = (await call('POST', `${base}/api/sessions`, { token, body: { workspace: 'bench', repoUrl: 'bench/app', branch: 'main' } })).body.session;
  const tgSetup = await call('POST', `${base}/api/me/telegram`, { token, body: { botToken: BOT } });
  const secret = fakes.tg.webhooks.get(BOT)?.secret_token;
  const me = (await call('GET', `${base}/api/me`, { token })).body.user.id;
  // Pair the bench's Telegram user (id 1) with the bot.
  await call('POST', `${base}/telegram/webhook/${me}`, {
    body: { update_id: 0, message: { message_id: 0, date: 1, chat: { id: 777, type: 'private' }, from: { id: 1, first_name: 'B' }, text: `/start ${tgSetup.body.pairingCode}` } },
    headers: { 'x-telegram-bot-api-secret-token': secret },
  });
  await call('POST', `${base}/api/channels/bindings`, { token, body: { sessionId: session.id, channelType: 'telegram', channelId: '777' } });
  const gmail = await call('POST', `${base}/api/integrations`, { token, body: { service: 'gmail', credentials: fakes.google.grant(GMAIL_ACCOUNT), config: { syncFrequency: 'manual' } } });
  if (gmail.status !== 201) throw new Error(`gmail integration: ${JSON.stringify(gmail.body)}`);

  const steady = async () => {
    const out = {};
    for (const [name, path, headers] of [['health', '/health', {}], ['integrations', '/api/integrations', auth]]) {
      const lat = [];
      for (let i = 0; i < 100; i++) lat.push((await get(base + path, headers)).ms);
      out[name] = { p50Ms: ms(pct(lat, 50)), p90Ms: ms(pct(lat, 90)) };
    }
    return out;
  };
  const commits = Array.from({ length: 18 }, (_, i) => ({ id: `c${i}`.padEnd(40, '0'), message: `Commit ${i}: `.padEnd(220, 'x'), timestamp: '2026-11-01T00:00:00Z', author: { name: 'Bench', email: 'b@example.com' } }));
  const pushTo = (branch) => {
    const body = JSON.stringify({ ref: `refs/heads/${branch}`, after: 'c17'.padEnd(40, '0'), repository: { id: 1000, full_name: 'bench/app' }, sender: { id: 4242, login: 'bench' }, commits });
    const sig = `sha256=${createHmac('sha256', HOOK_SECRET).update(body).digest('hex')}`;
    return {
      method: 'POST', body,
      requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sig } }) }],
    };
  };
  let updateId = 1;
  let rpcId = 1;
  const json = { ...auth, 'content-type': 'application/json' };
  const scenarios = [
    ['GET /health', `${base}/health`, {}],
    ['GET /api/integrations', `${base}/api/integrations`, { headers: auth }],
    ['POST /webhooks/github push, no session on the branch', `${base}/webhooks/github`, pushTo('no-session-here')],
    ['POST /webhooks/github push, one session on the branch', `${base}/webhooks/github`, pushTo('main')],
    ['POST /telegram/webhook text → bound session', `${base}/telegram/webhook/${me}`, {
      method: 'POST',
      requests: [{ setupRequest: (req) => {
        const id = updateId++;
        return { ...req, headers: { ...req.headers, 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret }, body: JSON.stringify({ update_id: id, message: { message_id: id, date: 1, chat: { id: 777, type: 'private' }, from: { id: 1, first_name: 'B' }, text: `hello ${id}` } }) };
      } }],
    }],
    ['POST /api/prompt', `${base}/api/prompt`, { method: 'POST', headers: json, body: JSON.stringify({ content: 'bench prompt', channelType: 'web', channelId: session.id }) }],
    ['POST …/actions/send_email (Gmail, fake)', `${base}/api/integrations/${gmail.body.integration.id}/actions/send_email`, {
      method: 'POST', headers: json, body: JSON.stringify({ to: 'someone@example.com', subject: 'Bench', body: 'Hello from the bench.' }),
    }, { amount: 500, warmup: 50 }],
    ['POST /mcp tools/call github_get_issue (fake)', `${base}/mcp`, {
      method: 'POST',
      headers: { ...json, accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
      requests: [{ setupRequest: (req) => {
        const id = rpcId++;
        return { ...req, body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'github_get_issue', arguments: { repository: 'bench/app', number: 1 + (id % 20) } } }) };
      } }],
    }, { amount: 500, warmup: 50 }],
  ];
  const stop = async () => { await w.stop(); rmSync(dir, { recursive: true, force: true }); };
  return { label, procs, steady, scenarios, pushPayloadBytes: pushTo('main').body.length, stop };
}

/** Every scenario against each target (this build, and the baseline when given), interleaved:
 * round 1 of a scenario on each target, then round 2 on each (in the other order), so that both
 * see the same machine. */
async function benchServices(fakes, targets, rounds = 2) {
  const out = targets.map((t) => ({ label: t.label, pushPayloadBytes: t.pushPayloadBytes, load: [] }));
  for (const [k, t] of targets.entries()) out[k].steady = await t.steady();
  for (let i = 0; i < targets[0].scenarios.length; i++) {
    const done = targets.map(() => []);
    for (let r = 0; r < rounds; r++) {
      // Which build goes first alternates by round: state a scenario leaves behind (rows, a
      // fake's memory) or the machine warming up does not always favour the same build.
      const order = [...targets.entries()];
      if (r % 2 === 1) order.reverse();
      for (const [k, t] of order) {
        const [, url, opts, size = {}] = t.scenarios[i];
        done[k].push(await round(url, opts, t.procs, { amount: size.amount ?? 2000, warmup: r === 0 ? (size.warmup ?? 300) : 0 }));
      }
    }
    for (const [k, t] of targets.entries()) {
      const c = combine(t.scenarios[i][0], done[k]);
      out[k].load.push(c);
      log(`  ${t.label}: ${c.scenario}: worker CPU ${c.cpuMsPerReq.worker} ms/req (rounds ${c.cpuMsPerReqByRound.join(', ')})`);
    }
  }
  return out;
}

const GMAIL_ACCOUNT = 'bench.mail@gmail.test';

async function main() {
  const baselineArg = process.argv.indexOf('--baseline');
  const baseline = baselineArg > 0 ? process.argv[baselineArg + 1] : undefined;
  setup();
  build({ ifNeeded: true });
  buildFloor();
  const results = { date: new Date().toISOString(), machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30) }, versions: {} };
  results.versions = { node: process.version, wrangler: JSON.parse(readFileSync(join(root, 'node_modules/wrangler/package.json'))).version, worker: '0.8.7' };

  log('upload size (wrangler deploy --dry-run)');
  const dry = spawnSync('node', [join(root, 'scripts', 'deploy.mjs'), '--dry-run'], { encoding: 'utf8', env: toolEnv() });
  const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(`${dry.stdout}${dry.stderr}`);
  results.upload = { rawKiB: Number(m?.[1]), gzipKiB: Number(m?.[2]), wasmSections: wasmSections(join(root, 'build', 'index_bg.wasm')) };
  const floorDry = spawnSync('node', [WRANGLER, 'deploy', '--dry-run', '--config', join(root, 'bench', 'floor', 'wrangler.toml'), '--outdir', join(root, 'bench', 'floor', 'dist')], { encoding: 'utf8', env: toolEnv({ SKIP_WORKER_BUILD: '1' }) });
  const fm = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(`${floorDry.stdout}${floorDry.stderr}`);
  results.floorUpload = { rawKiB: Number(fm?.[1]), gzipKiB: Number(fm?.[2]) };

  // Fakes for GitHub, Telegram and Google, shared by every launch.
  const cleanups = [];
  const ghFake = await new FakeUpstream('github').start();
  cleanups.push(() => ghFake.stop());
  const gh = startFakeGitHubOn(ghFake);
  gh.addUser(GH_TOKEN, { id: 4242, login: 'bench' });
  gh.addRepo('bench/app');
  gh.addIssues('bench/app', 20);
  const tgFake = await new FakeUpstream('telegram').start();
  cleanups.push(() => tgFake.stop());
  const tg = startFakeTelegramOn(tgFake);
  tg.addBot(BOT, 123456789, 'bench_bot');
  const google = await startFakeGoogle({ after: (fn) => cleanups.push(fn) });
  addGmail(google);
  const vars = {
    ENCRYPTION_KEY: 'Bn4Cm8Xv2Zq6Lw1Rt9Ks3Hd7Jf5Gp0Ye4Ui8Oa2Pl6M', GITHUB_API_URL: gh.api, GITHUB_WEB_URL: gh.web,
    TELEGRAM_API_URL: tg.url, GITHUB_WEBHOOK_SECRET: HOOK_SECRET, PUBLIC_URL: 'https://bench.example.com', ...google.vars(),
  };
  const fakes = { vars, tg, google };

  try {
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

    log('the floor worker under the same load as /health');
    results.floor = await benchFloor();
    log(`steady latency and load: this build${baseline ? ` and the baseline build in ${baseline}, interleaved` : ''}`);
    const targets = [await arrange(fakes, { port: 8911, label: 'build' })];
    try {
      if (baseline) targets.push(await arrange(fakes, { config: configFor(baseline), port: 8912, label: 'baseline' }));
      const [svc, base] = await benchServices(fakes, targets);
      results.steady = svc.steady;
      results.load = svc.load;
      results.pushPayloadBytes = svc.pushPayloadBytes;
      if (base) {
        results.baseline = { dir: baseline, steady: base.steady, load: base.load };
        results.baseline.wasmGzipKiB = Number((gzipSync(readFileSync(join(baseline, 'index_bg.wasm')), { level: 9 }).length / 1024).toFixed(2));
        results.baseline.wasmGzipKiBThisBuild = Number((gzipSync(readFileSync(join(root, 'build', 'index_bg.wasm')), { level: 9 }).length / 1024).toFixed(2));
      }
    } finally {
      for (const t of targets) await t.stop();
    }
  } finally {
    rmSync(join(root, '.bench-baseline.wrangler.toml'), { force: true });
    for (const c of cleanups) await c();
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
  log('MCP OAuth: register → consent → approve → token, and tools/call with an OAuth vs an API token');
  results.oauth = await benchOAuth({});

  log('data plane: 20 integrations of 20 users × 5,000 issues syncing at once, an idle one read meanwhile; bytes per stored entity');
  results.scale = await benchScale({});
  results.capacity = await benchCapacity({});
  if (baseline) {
    // The harness runs builds from inside the repository: a copy of the baseline goes there.
    const copy = join(root, '.bench-baseline-build');
    rmSync(copy, { recursive: true, force: true });
    cpSync(baseline, copy, { recursive: true });
    const old = hasDataPlane(copy) ? {} : { migrateUpTo: '0014_reconciler.sql' };
    results.baseline ??= { dir: baseline };
    results.baseline.scale = await benchScale({ buildDir: '.bench-baseline-build', ...old });
    results.baseline.capacity = await benchCapacity({ buildDir: '.bench-baseline-build', ...old, legacy: !hasDataPlane(copy) });
  }

  log('realtime: a change at the fake Google → the entity visible through the API (push on)');
  results.realtime = await benchRealtime({});

  writeFileSync(join(root, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n');
  printTable(results);
  cleanup();
}

/** `npm run bench -- --realtime`: only the realtime figures (merged into results.json). */
async function realtimeOnly() {
  setup();
  build({ ifNeeded: true });
  const file = join(root, 'bench', 'results.json');
  const results = JSON.parse(readFileSync(file, 'utf8'));
  results.realtime = await benchRealtime({});
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  for (const [a, b] of realtimeRows(results)) console.log(`${a}: ${b}`);
}

function realtimeRows(results) {
  const r = results.realtime;
  if (!r) return [];
  const cell = (x) => `p50 ${x.p50Ms} ms, p99 ${x.p99Ms} ms (n ${x.n}, max ${x.maxMs} ms)`;
  return [
    ['realtime: Gmail change → message visible through the API', cell(r.gmail)],
    ['realtime: Calendar change → event visible through the API', cell(r.calendar)],
  ];
}

/** `value` against `limit` (≤): the target column's verdict. */
const verdict = (value, limit) => (value <= limit ? 'met' : 'MISSED');

export function printTable(results) {
  const find = (prefix, list = results.load) => list.find((l) => l.scenario.startsWith(prefix));
  const cpu = (l) => l.cpuMsPerReq.worker;
  const health = find('GET /health');
  const floor = results.floor.load;
  const integ = find('GET /api/integrations');
  const pushNone = find('POST /webhooks/github push, no session');
  const pushOne = find('POST /webhooks/github push, one session');
  const tgText = find('POST /telegram/webhook');
  const prompt = find('POST /api/prompt');
  const gmail = find('POST …/actions/send_email');
  const mcp = find('POST /mcp tools/call');
  const over = ms(cpu(health) - cpu(floor));
  // The runtime's share of a route: the floor plus, per round trip the route makes, what one
  // such round trip adds to the floor (measured by the floor worker's /d1 and /do).
  const perD1 = results.floor.d1 ? cpu(results.floor.d1) - cpu(floor) : undefined;
  const perDo = results.floor.durable ? cpu(results.floor.durable) - cpu(floor) : undefined;
  const floorFor = (d1, dos) => (perD1 === undefined ? undefined : ms(cpu(floor) + d1 * perD1 + dos * perDo));
  const trips = (d1, dos) => `${d1} D1 round trip${d1 > 1 ? 's' : ''}${dos ? ` + ${dos} Durable Object call${dos > 1 ? 's' : ''}` : ''}`;
  const against = (l, limit, d1, dos) => {
    const f = floorFor(d1, dos);
    const v = `≤ ${limit.toFixed(1)} ms: ${verdict(cpu(l), limit)}`;
    return f === undefined ? v : `${v} (runtime floor for ${trips(d1, dos)}: ${f} ms; ours above it: ${ms(cpu(l) - f)} ms)`;
  };
  const rows = [
    ['upload raw / gzip (floor worker: raw / gzip)', `${results.upload.rawKiB} / ${results.upload.gzipKiB} KiB (floor ${results.floorUpload.rawKiB} / ${results.floorUpload.gzipKiB} KiB)`, `gzip ≤ 400 KiB: ${verdict(results.upload.gzipKiB, 400)}`],
    ['  of which Wasm code / data sections (gzip -9 each)', `${results.upload.wasmSections.code.gzipKiB} / ${results.upload.wasmSections.data.gzipKiB} KiB (raw ${results.upload.wasmSections.code.rawKiB} / ${results.upload.wasmSections.data.rawKiB} KiB)`, 'what dominates: see README, Performance'],
    ['CPU per request, ms: worker workerd / entry workerd / wrangler node', 'each row below; targets are on the worker workerd', ''],
    ['floor worker GET / CPU', cpuCell(floor), 'reported'],
    ...(results.floor.d1 ? [
      ['floor worker GET /d1 (one D1 statement) CPU', cpuCell(results.floor.d1), `one D1 round trip: +${ms(perD1)} ms`],
      ['floor worker GET /do (one Durable Object fetch) CPU', cpuCell(results.floor.durable), `one Durable Object round trip: +${ms(perDo)} ms`],
    ] : []),
    ['/health CPU, and over the floor', `${cpuCell(health)}; +${over} ms over the floor`, `≤ floor + 0.1 ms: ${verdict(over, 0.1)}`],
    ['/api/integrations CPU', cpuCell(integ), against(integ, 1.5, 1, 0)],
    ['/api/integrations steady p50 / p90 (sequential)', `${results.steady.integrations.p50Ms} / ${results.steady.integrations.p90Ms} ms`, `p50 ≤ 6 ms: ${verdict(results.steady.integrations.p50Ms, 6)}${results.floor.d1?.steady ? ` (floor with one D1 round trip: p50 ${results.floor.d1.steady.p50Ms} ms)` : ''}`],
    ['/health steady p50 / p90; floor p50 / p90', `${results.steady.health.p50Ms} / ${results.steady.health.p90Ms} ms; ${results.floor.steady.p50Ms} / ${results.floor.steady.p90Ms} ms`, 'reported'],
    ['GitHub push, no session on the branch: CPU', cpuCell(pushNone), against(pushNone, 1.0, 1, 0)],
    ['GitHub push, one session on the branch: CPU', cpuCell(pushOne), 'reported'],
    ['Telegram text → bound session: CPU', cpuCell(tgText), against(tgText, 2.0, 2, 1)],
    ['/api/prompt: CPU', cpuCell(prompt), against(prompt, 2.0, 2, 1)],
    ['Gmail send_email action (fake Gmail): CPU', cpuCell(gmail), 'reported'],
    ['MCP tools/call github_get_issue (fake GitHub): CPU', cpuCell(mcp), 'reported'],
    ['launch → first 200 /health (median of 5)', `${results.coldStart.launchToFirstHealthMs} ms`, ''],
    ['first request after ready: /health, /api/integrations', `${results.coldStart.firstRequestHealthMs} ms, ${results.coldStart.firstRequestIntegrationsMs} ms`, ''],
    ...[floor, ...(results.floor.d1 ? [results.floor.d1, results.floor.durable] : []), ...results.load].map((l) => [`load: ${l.scenario}`, `${l.requests} req, ${l.reqPerSec} req/s, p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, ${l.errors + l.non2xx} errors`, '']),
    ...(results.baseline ? [
      [`baseline ${results.baseline.dir}: wasm gzip -9, baseline → this build`, `${results.baseline.wasmGzipKiB} → ${results.baseline.wasmGzipKiBThisBuild} KiB`, ''],
      ['baseline steady p50 /api/integrations', `${results.baseline.steady.integrations.p50Ms} ms (this build ${results.steady.integrations.p50Ms} ms)`, ''],
      ...results.baseline.load.map((b) => [`baseline CPU: ${b.scenario}`, `${cpuCell(b)} (this build ${cpu(find(b.scenario))} ms)`, '']),
    ] : []),
    ['sync 10,000 issues, budget 45', syncCell(results.sync), `≥ 10,000 entities/s: ${results.sync.entitiesPerSecond >= 10000 ? 'met' : 'MISSED'}`],
    ['sync 10,000 issues, budget 1000', syncCell(results.syncPaid), `≥ 10,000 entities/s: ${results.syncPaid.entitiesPerSecond >= 10000 ? 'met' : 'MISSED'}`],
    ...['selective', 'prefix', 'broad'].map((k) => [`search over 10,000 issues: ${k} query p50/p99`, `${results.search[k].p50Ms} / ${results.search[k].p99Ms} ms`, '']),
    ...(results.scale ? scaleRows(results) : []),
    ...realtimeRows(results).map(([a, b]) => [a, b, 'reported (Google\'s own delay not included)']),
    ['MCP tools/list + one tools/call p50/p99 (sequential)', `${results.mcp.roundTrip.p50Ms} / ${results.mcp.roundTrip.p99Ms} ms (list ${results.mcp.toolsList.p50Ms} / ${results.mcp.toolsList.p99Ms}, call ${results.mcp.toolsCall.p50Ms} / ${results.mcp.toolsCall.p99Ms}; ${results.mcp.tools} tools)`, ''],
    ...(results.oauth ? [
      ['MCP OAuth round trip (register, consent page, approve, token) p50/p99', `${results.oauth.roundTrip.p50Ms} / ${results.oauth.roundTrip.p99Ms} ms`, ''],
      ['MCP tools/call: OAuth token vs API token p50/p99', `${results.oauth.toolsCallOAuth.p50Ms} / ${results.oauth.toolsCallOAuth.p99Ms} ms vs ${results.oauth.toolsCallApiToken.p50Ms} / ${results.oauth.toolsCallApiToken.p99Ms} ms`, ''],
    ] : []),
  ];
  const w1 = Math.max(...rows.map((r) => r[0].length));
  const w2 = Math.max(...rows.map((r) => r[1].length));
  console.log(`\nMachine: ${results.machine.cpu}, ${results.machine.cores} cores; wrangler ${results.versions.wrangler}, node ${results.versions.node}\n`);
  console.log(`${'figure'.padEnd(w1)}  ${'measured'.padEnd(w2)}  target`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c}`);
}

/** The data plane's rows: aggregate sync rate, the idle integration's reads, bytes per entity. */
function scaleRows(results) {
  const s = results.scale;
  const b = results.baseline?.scale;
  const reads = (x) => `entities p50/p99 ${x.entities.p50Ms}/${x.entities.p99Ms} ms, search ${x.search.p50Ms}/${x.search.p99Ms} ms`;
  const ratio = (x) => ms(Math.max(x.underLoad.entities.p50Ms / x.idle.entities.p50Ms, x.underLoad.search.p50Ms / x.idle.search.p50Ms));
  const rows = [
    [`data plane: ${s.integrations} × ${s.perIntegration} issues at once`, `${s.entities} entities in ${s.wallSeconds} s: ${s.aggregateEntitiesPerSecond} entities/s`, b ? `≥ 2× baseline (${b.aggregateEntitiesPerSecond}/s): ${s.aggregateEntitiesPerSecond >= 2 * b.aggregateEntitiesPerSecond ? 'met' : 'MISSED'} (${ms(s.aggregateEntitiesPerSecond / b.aggregateEntitiesPerSecond)}×)` : 'reported'],
    ['  idle integration, reads alone', reads(s.idle), ''],
    ['  idle integration, reads while the others sync', reads(s.underLoad), `p50 within 2× idle: ${ratio(s) <= 2 ? 'met' : 'MISSED'} (${ratio(s)}×)`],
    ...(b ? [
      ['  baseline: idle reads alone / while syncing', `${reads(b.idle)} / ${reads(b.underLoad)}`, `baseline ratio ${ratio(b)}×`],
    ] : []),
    ...Object.entries(results.capacity).map(([kind, c]) => [`bytes per stored ${kind}`, `${c.bytesPerEntity} B (${c.entities} entities, ${c.bytes} B)`, results.baseline?.capacity ? `before (D1): ${results.baseline.capacity[kind].bytesPerEntity} B` : '']),
  ];
  return rows;
}

const cpuCell = (l) => `${l.cpuMsPerReq.worker} / ${l.cpuMsPerReq.entry} / ${l.cpuMsPerReq.node} ms`;
const syncCell = (s) => `${s.wallSeconds} s, ${s.entitiesPerSecond} entities/s, ${s.invocations} consumer invocations, workerd RSS ${s.workerdStartRssMiB} MiB at start, peak ${s.workerdPeakRssMiB} MiB`;

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--print')) printTable(JSON.parse(readFileSync(join(root, 'bench', 'results.json'), 'utf8')));
  else if (process.argv.includes('--realtime')) realtimeOnly().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
  else main().then(() => process.exit(0), (e) => { console.error(e); cleanup(); process.exit(1); });
}
