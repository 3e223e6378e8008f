// `node bench/profile.mjs [buildDir] [scenario…]`: where the worker's CPU goes. Runs a build
// (default `build-prof`, made with function names kept: `BENCH_KEEP_NAMES=1`, see README) under
// `wrangler dev`, attaches to its V8 inspector, samples a CPU profile while a fixed number of
// requests run, and prints the functions with the most self time (Wasm functions by their Rust
// names) and the share of JS glue, Wasm and the runtime. Scenarios: health, integrations, push,
// prompt.
import { createHmac, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import WebSocket from 'ws';
import { root } from '../scripts/lib.mjs';
import { call, cleanup, configFor, prepareState, startWrangler } from './run.mjs';

const args = process.argv.slice(2);
const buildDir = join(root, args[0] && !['health', 'integrations', 'push', 'prompt'].includes(args[0]) ? args.shift() : 'build-prof');
const scenarios = args.length ? args : ['health', 'integrations', 'push'];
const SECRET = 'profile-webhook-secret';
const PORT = 8940;
const INSPECTOR = 9240;

async function inspector() {
  const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR}/json`)).json();
  const target = targets.find((t) => /integrations-service/.test(t.title ?? '')) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  let id = 0;
  const pending = new Map();
  ws.on('message', (m) => {
    const msg = JSON.parse(m);
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  });
  const send = (method, params = {}) => new Promise((res) => { const i = ++id; pending.set(i, res); ws.send(JSON.stringify({ id: i, method, params })); });
  return { send, close: () => ws.close() };
}

function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const deltas = profile.timeDeltas;
  let total = 0;
  profile.samples.forEach((nodeId, i) => {
    const n = byId.get(nodeId);
    const f = n.callFrame;
    const kind = f.url.startsWith('wasm://') ? 'wasm' : f.functionName.startsWith('(') ? f.functionName : 'js';
    const key = `${kind}\t${f.functionName || '(anonymous)'}${kind === 'js' ? ` ${f.url.split('/').pop()}:${f.lineNumber}` : ''}`;
    const dt = deltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  const kinds = {};
  for (const [k, v] of self) { const kind = k.split('\t')[0]; kinds[kind] = (kinds[kind] ?? 0) + v; }
  const sorted = [...self].sort((a, b) => b[1] - a[1]);
  return { total, kinds, top: sorted.slice(0, 25), wasm: sorted.filter(([k]) => k.startsWith('wasm\t')).slice(0, 25) };
}

async function main() {
  const { dir, token } = prepareState();
  const w = startWrangler(dir, PORT, { GITHUB_WEBHOOK_SECRET: SECRET, ENCRYPTION_KEY: 'Bn4Cm8Xv2Zq6Lw1Rt9Ks3Hd7Jf5Gp0Ye4Ui8Oa2Pl6M' }, { config: configFor(buildDir), inspectorPort: INSPECTOR });
  await w.ready;
  const base = `http://127.0.0.1:${PORT}`;
  const auth = { authorization: `Bearer ${token}` };
  try {
    const session = (await call('POST', `${base}/api/sessions`, { token, body: { workspace: 'p', repoUrl: 'bench/app', branch: 'main' } })).body.session;
    const body = JSON.stringify({ ref: 'refs/heads/nobody', after: 'a'.repeat(40), repository: { id: 1, full_name: 'bench/app' }, sender: { id: 1, login: 'b' },
      commits: Array.from({ length: 18 }, (_, i) => ({ id: `c${i}`.padEnd(40, '0'), message: `Commit ${i}: `.padEnd(220, 'x') })) });
    const sig = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
    const opts = {
      health: [`${base}/health`, {}],
      integrations: [`${base}/api/integrations`, { headers: auth }],
      prompt: [`${base}/api/prompt`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ content: 'profile prompt', channelType: 'web', channelId: session.id }) }],
      push: [`${base}/webhooks/github`, { method: 'POST', body, requests: [{ setupRequest: (r) => ({ ...r, headers: { ...r.headers, 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sig } }) }] }],
    };
    const insp = await inspector();
    await insp.send('Profiler.enable');
    await insp.send('Profiler.setSamplingInterval', { interval: 50 });
    for (const name of scenarios) {
      const [url, o] = opts[name];
      await autocannon({ url, connections: 10, amount: 300, ...o });
      await insp.send('Profiler.start');
      const n = 1500;
      await autocannon({ url, connections: 10, amount: n, ...o });
      const { result } = await insp.send('Profiler.stop');
      const s = summarize(result.profile);
      const per = (us) => (us / 1000 / n).toFixed(3);
      console.log(`\n== ${name}: ${n} requests; sampled isolate time per request ${per(s.total)} ms`);
      console.log(Object.entries(s.kinds).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${per(v)} ms`).join(', '));
      for (const [k, v] of s.top) console.log(`${per(v).padStart(7)} ms  ${k.replace('\t', '  ').slice(0, 150)}`);
      console.log('-- Wasm functions with the most self time:');
      for (const [k, v] of s.wasm) console.log(`${per(v).padStart(7)} ms  ${k.replace('\t', '  ').slice(0, 150)}`);
    }
    insp.close();
  } finally {
    await w.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(join(root, '.bench-baseline.wrangler.toml'), { force: true });
    cleanup();
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); cleanup(); process.exit(1); });
