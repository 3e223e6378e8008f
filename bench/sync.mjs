// Sync benchmark: 10,000 issues across several repositories from the local fake GitHub,
// synced by the compiled worker in workerd. Reports wall time, entities/s and the peak
// resident memory of the workerd process.
import { readFileSync, readdirSync } from 'node:fs';
import { Service, knownSecrets } from '../tests/lib/harness.mjs';
import { FakeUpstream } from '../tests/lib/fake-upstream.mjs';

/** workerd processes started by this Node process (Miniflare's children). */
function workerdPids() {
  const pids = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (ppid === process.pid && cmd.includes('workerd')) pids.push(Number(d));
    } catch {}
  }
  return pids;
}

/** utime + stime of a process, in seconds (`/proc` counts 10 ms ticks). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return 0; }
}

function rssKiB(pid, field) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
}

/** `after({url, token, integrationId, repository, issues, perRepo})`, when given, runs once the sync is
 * done, with the service still up; its answer is returned as `after`. */
export async function benchSync({ issues = 10_000, repos = 8, budget = '1000', after, buildDir = 'build' } = {}) {
  // A fake GitHub with its own ctx-free lifecycle (the test helper needs node:test).
  const fake = await new FakeUpstream('github').start();
  const { startFakeGitHubOn } = await import('../tests/lib/fake-github.mjs');
  const gh = startFakeGitHubOn(fake);
  const token = 'gho_bench_token_0000000000000000000';
  knownSecrets.add(token);
  gh.addUser(token, { id: 1, login: 'bench' });
  for (let r = 0; r < repos; r++) {
    gh.addRepo(`bench/repo-${r}`);
    gh.addIssues(`bench/repo-${r}`, Math.floor(issues / repos) + (r < issues % repos ? 1 : 0));
  }
  // Through the queue, as in production: each consumer invocation does one slice within
  // `budget` subrequests (45 = the default, inside the free plan's 50).
  const svc = new Service({ upstreams: { github: gh.api, githubWeb: gh.web }, vars: { SYNC_REQUEST_BUDGET: budget }, buildDir });
  try {
    await svc.start();
    const user = await svc.createUser({ email: 'bench@example.com' });
    const pid = workerdPids()[0];
    const startRss = pid ? rssKiB(pid, 'VmRSS') : 0;
    const created = await svc.request('POST', '/api/integrations', { token: user.token, body: { service: 'github', credentials: { access_token: token }, config: { entities: ['repositories', 'issues'] } } });
    if (created.status !== 201) throw new Error(`configure failed: ${created.text}`);
    const id = created.body.integration.id;
    const t0 = performance.now();
    // Where the wall time goes: the workerd running the Worker (and its D1), and this Node
    // process, which serves the fake GitHub's pages and polls the status.
    const pids = workerdPids();
    const cpu0 = { workerd: pids.reduce((a, p) => a + cpuSeconds(p), 0), node: process.cpuUsage() };
    const started = await svc.request('POST', `/api/integrations/${id}/sync`, { token: user.token, body: { fullSync: true } });
    let peak = 0;
    let status;
    for (;;) {
      if (pid) peak = Math.max(peak, rssKiB(pid, 'VmRSS'));
      status = (await svc.request('GET', `/api/integrations/${id}/sync/${started.body.syncId}`, { token: user.token })).body;
      if (status.status === 'completed' || status.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const wall = (performance.now() - t0) / 1000;
    const workerdCpu = pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0.workerd;
    const nodeUse = process.cpuUsage(cpu0.node);
    const nodeCpu = (nodeUse.user + nodeUse.system) / 1e6;
    if (status.status !== 'completed') throw new Error(`sync failed: ${JSON.stringify(status)}`);
    const hwm = pid ? rssKiB(pid, 'VmHWM') : 0;
    const figures = {
      issues, repos, budget: Number(budget), recordsSynced: status.progress, requests: status.requestsMade, invocations: status.invocations, wallSeconds: Number(wall.toFixed(2)),
      entitiesPerSecond: Math.round(status.progress / wall), workerdStartRssMiB: Number((startRss / 1024).toFixed(1)), workerdPeakRssMiB: Number((Math.max(peak, hwm) / 1024).toFixed(1)),
      cpuSeconds: { workerd: Number(workerdCpu.toFixed(2)), node: Number(nodeCpu.toFixed(2)) },
    };
    if (after) figures.after = await after({ url: svc.url, token: user.token, integrationId: id, repository: 'bench/repo-0', issues, perRepo: Math.floor(issues / repos) });
    return figures;
  } finally {
    await svc.stop();
    await fake.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { build } = await import('../scripts/build.mjs');
  build({ ifNeeded: true });
  for (const budget of ['45', '1000']) console.log(JSON.stringify(await benchSync({ budget }), null, 2));
}
