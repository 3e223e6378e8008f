// The data plane at scale (issue 25): many integrations of several users syncing at once through
// the queue, and what it costs an idle integration's readers meanwhile; and the bytes one stored
// entity takes (a GitHub issue, a Gmail message, a Calendar event), from which the README's
// capacity table is computed. Runs a build through the test harness (workerd with local D1 and
// Durable Objects); `buildDir` and `migrateUpTo` select another build (a baseline) and the
// migrations it knew.
import { Service, knownSecrets } from '../tests/lib/harness.mjs';
import { FakeUpstream } from '../tests/lib/fake-upstream.mjs';
import { startFakeGitHubOn } from '../tests/lib/fake-github.mjs';
import { startFakeGoogle } from '../tests/lib/fake-google.mjs';
import { addGmail, rawMessage } from '../tests/lib/fake-gmail.mjs';
import { addFakeCalendar } from '../tests/lib/fake-calendar.mjs';

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (x) => Number(x.toFixed(2));
const summary = (lat) => ({ n: lat.length, p50Ms: ms(pct(lat, 50)), p99Ms: ms(pct(lat, 99)) });
const sleep = (t) => new Promise((r) => setTimeout(r, t));

/** A typical issue body: a few paragraphs of a bug report (about 1.2 KB). */
const ISSUE_BODY = Array.from({ length: 8 }, (_, i) => `Step ${i + 1}: the parser reads the configuration file and the scheduler retries the failed job after a backoff of several seconds.`).join('\n\n');
/** A typical plain-text mail (about 4 KB). */
const MAIL_TEXT = Array.from({ length: 30 }, (_, i) => `Line ${i + 1} of the weekly report: the numbers for the quarter are attached and the meeting moves to Thursday afternoon.`).join('\n');

async function waitSync(svc, token, id, syncId) {
  for (;;) {
    const s = (await svc.request('GET', `/api/integrations/${id}/sync/${syncId}`, { token })).body;
    if (s.status === 'completed') return s;
    if (s.status === 'failed') throw new Error(`sync failed: ${JSON.stringify(s)}`);
    await sleep(100);
  }
}

async function connect(svc, token, body) {
  const r = await svc.request('POST', '/api/integrations', { token, body: { config: { syncFrequency: 'manual' }, ...body } });
  if (r.status !== 201) throw new Error(`connect: ${r.status} ${r.text}`);
  return r.body.integration.id;
}

async function sync(svc, token, id) {
  const r = await svc.request('POST', `/api/integrations/${id}/sync`, { token, body: { fullSync: true } });
  if (r.status !== 202) throw new Error(`sync: ${r.status} ${r.text}`);
  return r.body.syncId;
}

/** Reads of an idle integration (an entities page, a search), one after the other, until `stop()`. */
function reader(svc, token, id, until) {
  const lat = { entities: [], search: [] };
  const run = (async () => {
    let i = 0;
    while (!until()) {
      const kind = i++ % 2 ? 'search' : 'entities';
      const path = kind === 'search' ? `/api/integrations/${id}/search?q=scheduler+backoff&limit=20` : `/api/integrations/${id}/entities/issues?limit=50`;
      const t0 = performance.now();
      const r = await svc.request('GET', path, { token });
      if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.text.slice(0, 200)}`);
      lat[kind].push(performance.now() - t0);
    }
  })();
  return { lat, done: run };
}

/** N integrations × `perIntegration` issues syncing at once (budget 45 per consumer invocation,
 * the free plan's figure); the idle integration's reads are timed before and during. */
export async function benchScale({ buildDir = 'build', migrateUpTo, integrations = 20, perIntegration = 5000, idleIssues = 500 } = {}) {
  const dataPlane = !migrateUpTo;
  const fake = await new FakeUpstream('github').start();
  const gh = startFakeGitHubOn(fake);
  const owners = [];
  for (let i = 0; i <= integrations; i++) {
    const token = `gho_scale_${String(i).padStart(3, '0')}_token_000000000000000`;
    knownSecrets.add(token);
    gh.addUser(token, { id: 100 + i, login: `user${i}` });
    const repo = `user${i}/data`;
    gh.addRepo(repo);
    gh.restrict(repo, [token]);
    const list = gh.addIssues(repo, i === 0 ? idleIssues : perIntegration);
    for (const issue of list) issue.body = ISSUE_BODY;
    owners.push({ token, repo });
  }
  const svc = new Service({ upstreams: { github: gh.api, githubWeb: gh.web }, vars: { SYNC_REQUEST_BUDGET: '45' }, buildDir, migrateUpTo, dataPlane });
  try {
    await svc.start();
    const users = [];
    for (let i = 0; i <= integrations; i++) {
      const u = await svc.createUser({ email: `scale${i}@example.com` });
      users.push({ ...u, id: await connect(svc, u.token, { service: 'github', credentials: { access_token: owners[i].token }, config: { syncFrequency: 'manual', entities: ['repositories', 'issues'] } }) });
    }
    const idle = users[0];
    await waitSync(svc, idle.token, idle.id, await sync(svc, idle.token, idle.id));
    // Idle latency first, with nothing else running.
    let t0 = performance.now();
    const quiet = reader(svc, idle.token, idle.id, () => performance.now() - t0 > 8000);
    await quiet.done;
    // Then every other integration syncs at once.
    const busy = users.slice(1);
    t0 = performance.now();
    const runs = await Promise.all(busy.map(async (u) => ({ u, syncId: await sync(svc, u.token, u.id) })));
    let finished = false;
    const loaded = reader(svc, idle.token, idle.id, () => finished);
    const done = await Promise.all(runs.map(({ u, syncId }) => waitSync(svc, u.token, u.id, syncId)));
    const wall = (performance.now() - t0) / 1000;
    finished = true;
    await loaded.done;
    const entities = done.reduce((a, s) => a + s.progress, 0);
    return {
      integrations, perIntegration, entities, wallSeconds: ms(wall), aggregateEntitiesPerSecond: Math.round(entities / wall),
      idle: { entities: summary(quiet.lat.entities), search: summary(quiet.lat.search) },
      underLoad: { entities: summary(loaded.lat.entities), search: summary(loaded.lat.search) },
    };
  } finally {
    await svc.stop();
    await fake.stop();
  }
}

/** The D1 database's size, as D1 reports it after a statement (`meta.size_after`). */
async function d1Bytes(svc) {
  return (await (await svc.db()).prepare('SELECT 1').all()).meta.size_after;
}

/** Bytes per stored entity of each kind: with objects, the object's database size over its
 * entities; before (`legacy`), the growth of the D1 file over the entities added. */
export async function benchCapacity({ buildDir = 'build', migrateUpTo, legacy = false, issues = 2000, messages = 400, events = 1000 } = {}) {
  const cleanups = [];
  const fake = await new FakeUpstream('github').start();
  cleanups.push(() => fake.stop());
  const gh = startFakeGitHubOn(fake);
  const ghToken = 'gho_capacity_token_0000000000000000';
  knownSecrets.add(ghToken);
  gh.addUser(ghToken, { id: 7, login: 'cap' });
  gh.addRepo('cap/data');
  for (const issue of gh.addIssues('cap/data', issues)) issue.body = ISSUE_BODY;
  const g = await startFakeGoogle({ after: (fn) => cleanups.push(fn) });
  const mail = addGmail(g);
  const cal = addFakeCalendar(g);
  const ME = 'capacity@gmail.test';
  for (let i = 0; i < messages; i++) {
    await mail.addMessage(ME, { raw: rawMessage({ from: 'Colleague <colleague@example.com>', to: ME, subject: `Weekly report ${i}`, text: MAIL_TEXT }) });
  }
  cal.addAccount(ME);
  for (let i = 0; i < events; i++) {
    const start = Date.parse('2026-03-01T09:00:00Z') + i * 3_600_000;
    cal.addEvent(ME, ME, {
      summary: `Planning session ${i}`, description: 'Agenda: review the roadmap, assign owners, agree on dates for the next milestone.',
      location: 'Room 4', start: { dateTime: new Date(start).toISOString() }, end: { dateTime: new Date(start + 1_800_000).toISOString() },
      attendees: [{ email: 'a@example.com' }, { email: 'b@example.com' }],
    });
  }
  const svc = new Service({ upstreams: { github: gh.api, githubWeb: gh.web }, vars: { ...g.vars(), SYNC_REQUEST_BUDGET: '1000' }, buildDir, migrateUpTo, dataPlane: !legacy });
  try {
    await svc.start();
    const u = await svc.createUser({ email: 'capacity@example.com' });
    const grant = () => { const c = g.grant(ME); return { ...c, expires_at: Number(c.expires_at) * 1000 }; };
    const kinds = [
      ['github issue', { service: 'github', credentials: { access_token: ghToken }, config: { syncFrequency: 'manual', entities: ['repositories', 'issues'] } }],
      ['gmail message', { service: 'gmail', credentials: grant(), config: { syncFrequency: 'manual', entities: ['messages'] } }],
      ['calendar event', { service: 'google_calendar', credentials: grant(), config: { syncFrequency: 'manual', entities: ['calendars', 'events'] } }],
    ];
    const out = {};
    for (const [kind, body] of kinds) {
      const before = legacy ? await d1Bytes(svc) : 0;
      const id = await connect(svc, u.token, body);
      const s = await waitSync(svc, u.token, id, await sync(svc, u.token, id));
      const stored = (await svc.request('GET', `/api/integrations/${id}`, { token: u.token })).body.integration;
      const bytes = legacy ? (await d1Bytes(svc)) - before : stored.storage.bytes;
      const n = legacy ? s.progress : stored.storage.entities;
      out[kind] = { entities: n, bytes, bytesPerEntity: Math.round(bytes / n) };
    }
    return out;
  } finally {
    await svc.stop();
    for (const c of cleanups.reverse()) await c();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { build } = await import('../scripts/build.mjs');
  build({ ifNeeded: true });
  console.log(JSON.stringify({ capacity: await benchCapacity(), scale: await benchScale() }, null, 2));
}
