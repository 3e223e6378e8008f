// Realtime (issue 29): how long from a change at the provider to the entity being visible
// through the API, when push is on. The fakes publish the change the way Google does (a
// Pub/Sub push with a signed OIDC token for Gmail; an `exists` message on the calendar's
// channel), the worker verifies it and enqueues an incremental run, the queue consumer syncs,
// and the bench polls `GET /api/integrations/:id/entities/...` every 10 ms until the new entity
// is there. Sequential: each change waits for the previous run to finish. Runs the deployable
// build through the test harness (workerd with local D1, Durable Objects and queues); the
// platform's own delay (Google → Pub/Sub → us) is Google's and not included.
import { Service, knownSecrets } from '../tests/lib/harness.mjs';
import { startFakeGoogle } from '../tests/lib/fake-google.mjs';
import { addGmail, rawMessage } from '../tests/lib/fake-gmail.mjs';
import { addFakeCalendar } from '../tests/lib/fake-calendar.mjs';
import { addGmailPush, addCalendarPush } from '../tests/lib/fake-push.mjs';

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (x) => Number(x.toFixed(2));
const summary = (lat) => ({ n: lat.length, p50Ms: ms(pct(lat, 50)), p99Ms: ms(pct(lat, 99)), maxMs: ms(Math.max(...lat)) });
const sleep = (t) => new Promise((r) => setTimeout(r, t));

async function until(what, f, limitMs = 30000, every = 10) {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > limitMs) throw new Error(`realtime bench: timed out waiting for ${what}`);
    await sleep(every);
  }
}

export async function benchRealtime({ buildDir = 'build', n = 40 } = {}) {
  const cleanups = [];
  const g = await startFakeGoogle({ after: (fn) => cleanups.push(fn) });
  const mail = addGmail(g);
  const ps = addGmailPush(g, mail);
  const cal = addFakeCalendar(g);
  const ch = addCalendarPush(g, cal);
  const svc = new Service({ buildDir, vars: { ...g.vars(), ...ps.vars(), SYNC_REQUEST_BUDGET: '1000' } });
  await svc.start();
  try {
    ps.endpoint = `${svc.url}/webhooks/google/pubsub`;
    const user = await svc.createUser({ email: 'bench-realtime@example.com' });
    const api = (method, path, body) => svc.request(method, path, { token: user.token, body });
    const idle = (id) => until('runs to finish', async () => (await (await svc.db()).prepare("SELECT COUNT(*) AS n FROM sync_logs WHERE integration_id = ?1 AND status IN ('pending', 'running')").bind(id).first()).n === 0);
    const has = async (id, type, externalId) => {
      const r = await api('GET', `/api/integrations/${id}/entities/${type}?limit=100`);
      return r.body.entities?.some((e) => e._sync.externalId === externalId || e.id === externalId);
    };
    const connect = async (service, email) => {
      const creds = g.grant(email);
      knownSecrets.add(creds.access_token);
      knownSecrets.add(creds.refresh_token);
      const r = await api('POST', '/api/integrations', { service, credentials: creds, config: { syncFrequency: 'realtime' } });
      if (r.status !== 201) throw new Error(`connect ${service}: ${r.status} ${r.text}`);
      const id = r.body.integration.id;
      const s = await api('POST', `/api/integrations/${id}/sync`, {});
      await until('the first sync', async () => (await api('GET', `/api/integrations/${id}/sync/${s.body.syncId}`)).body.status === 'completed');
      await until('push mode', async () => (await api('GET', `/api/integrations/${id}`)).body.integration.realtime.mode === 'push');
      await idle(id);
      return id;
    };

    const MAIL = 'bench.realtime@gmail.test';
    await mail.addMessage(MAIL, { raw: rawMessage({ to: MAIL, subject: 'Seed' }) });
    const gmailId = await connect('gmail', MAIL);
    const gmail = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const m = await mail.addMessage(MAIL, { raw: rawMessage({ to: MAIL, subject: `Realtime ${i}` }) });
      await until(`message ${i}`, () => has(gmailId, 'messages', m.id));
      gmail.push(performance.now() - t0);
      await idle(gmailId);
    }

    const CAL = 'bench.realtime.cal@example.com';
    cal.addAccount(CAL);
    const calId = await connect('google_calendar', CAL);
    const calendar = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const day = String(1 + (i % 28)).padStart(2, '0');
      const e = cal.addEvent(CAL, CAL, { summary: `Realtime ${i}`, start: { dateTime: `2026-05-${day}T10:00:00Z` }, end: { dateTime: `2026-05-${day}T11:00:00Z` } });
      await until(`event ${i}`, () => has(calId, 'events', e.id));
      calendar.push(performance.now() - t0);
      await idle(calId);
    }
    return {
      gmail: summary(gmail),
      calendar: summary(calendar),
      pushesRefused: ps.deliveries.filter((d) => d.status !== 200).length,
      channelMessagesRefused: ch.deliveries.filter((d) => d.status !== 200).length,
    };
  } finally {
    await svc.stop();
    for (const c of cleanups) await c();
  }
}
