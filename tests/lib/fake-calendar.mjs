// Google Calendar routes on the fake Google (`startFakeGoogle`), speaking the real paths and
// shapes under /calendar/v3: calendarList (paged, `primary` alias), events.list with timeMin /
// timeMax / q / singleEvents (+ orderBy=startTime) / showDeleted / pageToken and `syncToken`
// (the changes since a token, deleted events as `cancelled`; an expired token answers 410
// fullSyncRequired), get, insert (conferenceDataVersion=1 + createRequest → a Meet), patch
// (top-level fields replaced, null removes), delete (404 missing, 410 already deleted),
// quickAdd and freeBusy. Every call is authenticated with `g.account(req)`.
import { randomBytes } from 'node:crypto';

const BASE = '/calendar/v3';
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
const unb64 = (s) => { try { return JSON.parse(Buffer.from(s, 'base64url').toString()); } catch { return undefined; } };
const eventId = () => randomBytes(10).toString('hex'); // base32hex-like: [0-9a-f]

/** Adds the Calendar API to a fake Google; answers the test-side helpers. */
export function addFakeCalendar(g) {
  const { fake } = g;
  const c = {
    accounts: new Map(), // email → {calendars: [entry], events: Map(calendarId → Map(id → event))}
    seq: 0, // change counter: each event carries the value of its last change
    epoch: 1, // sync tokens of an older epoch are expired
    clock: Date.parse('2026-02-01T00:00:00Z'),
    /** A strictly increasing `updated` time. */
    tick() {
      this.clock = Math.max(this.clock + 1, Date.now());
      return new Date(this.clock).toISOString();
    },
    addAccount(email, { timeZone = 'UTC', summary = email } = {}) {
      this.accounts.set(email, { calendars: [], events: new Map() });
      return this.addCalendar(email, { id: email, summary, primary: true, selected: true, timeZone, accessRole: 'owner' });
    },
    addCalendar(email, { id, summary = id, selected = false, primary = false, timeZone = 'UTC', accessRole = 'owner' }) {
      const a = this.accounts.get(email);
      const entry = { kind: 'calendar#calendarListEntry', etag: '"1"', id, summary, timeZone, accessRole, backgroundColor: '#9fe1e7', defaultReminders: [{ method: 'popup', minutes: 10 }] };
      if (primary) entry.primary = true;
      if (selected) entry.selected = true; // Google leaves `selected` out when false
      a.calendars.push(entry);
      a.events.set(id, new Map());
      return entry;
    },
    calendarOf(email, id) {
      const a = this.accounts.get(email);
      const real = id === 'primary' ? email : id;
      return a?.events.has(real) ? { id: real, entry: a.calendars.find((x) => x.id === real), events: a.events.get(real) } : undefined;
    },
    /** Stores an event as Google would have it; answers the stored object. */
    addEvent(email, calendarId, fields) {
      const cal = this.calendarOf(email, calendarId);
      const now = this.tick();
      const id = fields.id ?? eventId();
      const e = {
        kind: 'calendar#event', etag: `"${this.seq}"`, id, status: 'confirmed', htmlLink: `https://calendar.google.com/event?eid=${id}`,
        created: now, updated: now, summary: '', creator: { email }, organizer: { email: cal.id, self: true, ...(cal.id !== email ? { displayName: cal.entry.summary } : {}) },
        iCalUID: `${id}@google.com`, sequence: 0, reminders: { useDefault: true }, eventType: 'default', ...fields,
      };
      if (e.attendees) e.attendees = attendees(e.attendees, [], email, e.organizer.email);
      e._seq = ++this.seq;
      cal.events.set(id, e);
      return e;
    },
    event(email, calendarId, id) {
      return this.calendarOf(email, calendarId)?.events.get(id);
    },
    /** Changes an event upstream (a later incremental sync sees it). */
    touch(email, calendarId, id, changes = {}) {
      const e = this.event(email, calendarId, id);
      Object.assign(e, changes, { updated: this.tick(), _seq: ++this.seq });
      return e;
    },
    cancel(email, calendarId, id) {
      return this.touch(email, calendarId, id, { status: 'cancelled' });
    },
    /** Every sync token handed out so far stops working (Google's 410 fullSyncRequired). */
    expireSyncTokens() {
      this.epoch++;
    },
  };

  const notFound = () => g.error(404, 'Not Found', 'notFound');
  const bad = (message, reason = 'invalid') => g.error(400, message, reason);
  const ms = (t) => (t?.dateTime ? Date.parse(t.dateTime) : t?.date ? Date.parse(`${t.date}T00:00:00Z`) : NaN);
  const wire = (e) => Object.fromEntries(Object.entries(e).filter(([k]) => !k.startsWith('_')));
  const auth = (req) => g.account(req);

  /** Attendee entries as Google keeps them: a response for everyone, `self`/`organizer` marked. */
  function attendees(list, previous, email, organizer) {
    return list.map((a) => {
      const out = { ...a, responseStatus: a.responseStatus ?? 'needsAction' };
      delete out.self;
      delete out.organizer;
      if (a.email.toLowerCase() === email.toLowerCase()) out.self = true;
      if (a.email.toLowerCase() === organizer.toLowerCase()) out.organizer = true;
      return out;
    });
  }

  function conference(body, req) {
    const create = body.conferenceData?.createRequest;
    if (req.query.get('conferenceDataVersion') !== '1' || !create) return undefined;
    if (!create.requestId) return { error: bad('Invalid conference request: requestId is required') };
    if (create.conferenceSolutionKey?.type !== 'hangoutsMeet') return { error: bad('Invalid conference type value.') };
    const code = `${randomBytes(2).toString('hex').slice(0, 3)}-${randomBytes(2).toString('hex')}-${randomBytes(2).toString('hex').slice(0, 3)}`;
    const uri = `https://meet.google.com/${code}`;
    c.meetRequests = [...(c.meetRequests ?? []), create.requestId];
    return {
      conferenceData: {
        createRequest: { ...create, status: { statusCode: 'success' } },
        entryPoints: [{ entryPointType: 'video', uri, label: uri.slice(8) }, { entryPointType: 'more', uri: 'https://tel.meet/x?pin=1' }],
        conferenceSolution: { key: { type: 'hangoutsMeet' }, name: 'Google Meet' },
        conferenceId: code,
      },
      hangoutLink: uri,
    };
  }

  /** Google's checks of an event's times. */
  function checkTimes(e) {
    for (const k of ['start', 'end']) {
      const t = e[k];
      if (!t || (!t.date && !t.dateTime) || (t.date && t.dateTime)) return bad(`Invalid ${k} time.`);
      if (t.dateTime && Number.isNaN(Date.parse(t.dateTime))) return bad(`Invalid ${k} time.`);
    }
    if (!!e.start.date !== !!e.end.date) return bad('Start and end times must either both be date or both be dateTime.');
    if (ms(e.end) <= ms(e.start)) return bad('The specified time range is empty.', 'timeRangeEmpty');
    if (e.recurrence?.length && e.start.dateTime && !e.start.timeZone) return bad('Missing time zone definition for start time.');
    return undefined;
  }

  /** Instances of a recurring event: FREQ=DAILY|WEEKLY with COUNT/UNTIL/INTERVAL and UTC EXDATEs
   * (what the tests use). */
  function instances(e, until) {
    const rule = (e.recurrence ?? []).find((l) => l.startsWith('RRULE:'));
    if (!rule) return [e];
    const p = Object.fromEntries(rule.slice(6).split(';').map((x) => x.split('=')));
    const step = (p.FREQ === 'WEEKLY' ? 7 : 1) * Number(p.INTERVAL ?? 1) * 86400000;
    const count = Number(p.COUNT ?? 1000);
    const last = p.UNTIL ? Date.parse(p.UNTIL.replace(/^(\d{4})(\d{2})(\d{2})(T(\d{2})(\d{2})(\d{2}))?Z?$/, (_, y, m, d, t, H = '23', M = '59', S = '59') => `${y}-${m}-${d}T${H}:${M}:${S}Z`)) : Infinity;
    const [s0, e0] = [ms(e.start), ms(e.end)];
    // Exceptions given in UTC (EXDATE:20260309T140000Z,…).
    const skip = new Set((e.recurrence ?? []).filter((l) => l.startsWith('EXDATE:')).flatMap((l) => l.slice(7).split(',')));
    const out = [];
    for (let i = 0; i < count; i++) {
      const s = s0 + i * step;
      if (s > last || s > until) break;
      const stamp = new Date(s).toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
      if (skip.has(stamp)) continue;
      const at = (t, v) => (t.date ? { date: new Date(v).toISOString().slice(0, 10) } : { dateTime: new Date(v).toISOString().replace('.000', ''), timeZone: t.timeZone });
      const inst = { ...e, id: `${e.id}_${stamp}`, recurringEventId: e.id, originalStartTime: at(e.start, s), start: at(e.start, s), end: at(e.end, s + (e0 - s0)) };
      delete inst.recurrence;
      out.push(inst);
    }
    return out;
  }

  const page = (items, req, max) => {
    const start = Number(unb64(req.query.get('pageToken') ?? '')?.o ?? 0);
    const slice = items.slice(start, start + max);
    return { slice, next: start + max < items.length ? b64({ o: start + max }) : undefined };
  };

  // calendarList
  fake.on('GET', `${BASE}/users/me/calendarList`, (req) => {
    const email = auth(req);
    if (!email) return g.unauthorized;
    const max = Math.min(Number(req.query.get('maxResults') ?? 100), 250);
    const { slice, next } = page(c.accounts.get(email)?.calendars ?? [], req, max);
    return { json: { kind: 'calendar#calendarList', etag: '"p"', items: slice, ...(next ? { nextPageToken: next } : { nextSyncToken: 'cl-sync' }) } };
  });
  fake.on('GET', new RegExp(`^${BASE}/users/me/calendarList/([^/]+)$`), (req, m) => {
    const email = auth(req);
    if (!email) return g.unauthorized;
    const cal = c.calendarOf(email, decodeURIComponent(m[1]));
    return cal ? { json: cal.entry } : notFound();
  });

  // events.list, with sync tokens
  fake.on('GET', new RegExp(`^${BASE}/calendars/([^/]+)/events$`), (req, m) => {
    const email = auth(req);
    if (!email) return g.unauthorized;
    const cal = c.calendarOf(email, decodeURIComponent(m[1]));
    if (!cal) return notFound();
    const q = req.query;
    const single = q.get('singleEvents') === 'true';
    if (q.get('orderBy') === 'startTime' && !single) return bad('The requested ordering is not available for the particular query.');
    const max = Math.min(Number(q.get('maxResults') ?? 250), 2500);
    if (!(max >= 1)) return bad('Invalid value for maxResults');
    let list = [...cal.events.values()];
    const syncToken = q.get('syncToken');
    if (syncToken) {
      for (const k of ['timeMin', 'timeMax', 'q', 'orderBy', 'updatedMin', 'iCalUID']) if (q.has(k)) return bad(`${k} is not allowed with syncToken`);
      const t = unb64(syncToken);
      if (!t || t.c !== cal.id) return bad('Invalid sync token value.');
      if (t.e !== c.epoch) return { status: 410, json: { error: { code: 410, message: 'Sync token is no longer valid, a full sync is required.', errors: [{ domain: 'calendar', reason: 'fullSyncRequired', message: 'Sync token is no longer valid, a full sync is required.' }] } } };
      list = list.filter((e) => e._seq > t.s); // deleted ones included, as `cancelled`
    } else {
      if (q.get('showDeleted') !== 'true') list = list.filter((e) => e.status !== 'cancelled');
      const from = q.has('timeMin') ? Date.parse(q.get('timeMin')) : -Infinity;
      const to = q.has('timeMax') ? Date.parse(q.get('timeMax')) : Infinity;
      if (Number.isNaN(from) || Number.isNaN(to)) return bad('Bad Request');
      if (to <= from) return bad('The specified time range is empty.', 'timeRangeEmpty');
      if (single) list = list.flatMap((e) => (e.status === 'cancelled' ? [e] : instances(e, to)));
      if (q.has('timeMin') || q.has('timeMax')) list = list.filter((e) => e.status === 'cancelled' || (ms(e.end) > from && ms(e.start) < to));
      if (q.has('q')) {
        const words = q.get('q').toLowerCase();
        list = list.filter((e) => [e.summary, e.description, e.location].some((f) => f?.toLowerCase().includes(words)));
      }
      if (q.get('orderBy') === 'startTime') list.sort((a, b) => ms(a.start) - ms(b.start));
    }
    const { slice, next } = page(list, req, max);
    const body = { kind: 'calendar#events', summary: cal.entry.summary, timeZone: cal.entry.timeZone, accessRole: 'owner', items: slice.map(wire) };
    if (next) body.nextPageToken = next;
    else body.nextSyncToken = b64({ c: cal.id, s: c.seq, e: c.epoch });
    return { json: body };
  });

  // insert
  fake.on('POST', new RegExp(`^${BASE}/calendars/([^/]+)/events$`), (req, m) => {
    const email = auth(req);
    if (!email) return g.unauthorized;
    const cal = c.calendarOf(email, decodeURIComponent(m[1]));
    if (!cal) return notFound();
    const body = { ...(req.json ?? {}) };
    const meet = conference(body, req);
    if (meet?.error) return meet.error;
    delete body.conferenceData;
    const problem = checkTimes(body);
    if (problem) return problem;
    const e = c.addEvent(email, cal.id, { ...body, ...(meet ?? {}) });
    return { json: wire(e) };
  });

  // quickAdd: "<summary> on YYYY-MM-DD at HH:MM" (else tomorrow at noon), one hour, UTC
  fake.on('POST', new RegExp(`^${BASE}/calendars/([^/]+)/events/quickAdd$`), (req, m) => {
    const email = auth(req);
    if (!email) return g.unauthorized;
    const cal = c.calendarOf(email, decodeURIComponent(m[1]));
    if (!cal) return notFound();
    const text = req.query.get('text');
    if (!text) return bad('Required parameter: text', 'required');
    const hit = /^(.*) on (\d{4}-\d{2}-\d{2}) at (\d{2}:\d{2})$/.exec(text);
    const start = hit ? Date.parse(`${hit[2]}T${hit[3]}:00Z`) : Math.ceil(Date.now() / 86400000) * 86400000 + 12 * 3600000;
    const iso = (v) => new Date(v).toISOString().replace('.000', '');
    const e = c.addEvent(email, cal.id, { summary: hit ? hit[1] : text, start: { dateTime: iso(start), timeZone: 'UTC' }, end: { dateTime: iso(start + 3600000), timeZone: 'UTC' } });
    return { json: wire(e) };
  });

  // get / patch / delete
  const one = (handler) => (req, m) => {
    const email = auth(req);
    if (!email) return g.unauthorized;
    const cal = c.calendarOf(email, decodeURIComponent(m[1]));
    const e = cal?.events.get(decodeURIComponent(m[2]));
    return handler(req, email, cal, e);
  };
  const EVENT = new RegExp(`^${BASE}/calendars/([^/]+)/events/([^/]+)$`);
  fake.on('GET', EVENT, one((req, email, cal, e) => (e ? { json: wire(e) } : notFound())));
  fake.on('PATCH', EVENT, one((req, email, cal, e) => {
    if (!e) return notFound();
    if (e.status === 'cancelled') return { status: 410, json: { error: { code: 410, message: 'Resource has been deleted', errors: [{ reason: 'deleted' }] } } };
    const body = req.json ?? {};
    const next = { ...e };
    for (const [k, v] of Object.entries(body)) {
      if (k === 'conferenceData' || k.startsWith('_') || ['id', 'created', 'updated', 'organizer', 'creator', 'kind', 'etag'].includes(k)) continue;
      if (v === null) delete next[k];
      else next[k] = v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null)) : v;
    }
    if ('conferenceData' in body && req.query.get('conferenceDataVersion') === '1') {
      if (body.conferenceData === null) {
        delete next.conferenceData;
        delete next.hangoutLink;
      } else {
        const meet = conference(body, req);
        if (meet?.error) return meet.error;
        Object.assign(next, meet ?? {});
      }
    }
    if (body.attendees) next.attendees = attendees(body.attendees, e.attendees ?? [], email, e.organizer.email);
    const problem = checkTimes(next);
    if (problem) return problem;
    if (body.start || body.end) next.sequence = (e.sequence ?? 0) + 1;
    Object.assign(e, next, { updated: c.tick(), _seq: ++c.seq });
    for (const k of Object.keys(e)) if (!(k in next) && !['updated', '_seq'].includes(k)) delete e[k];
    return { json: wire(e) };
  }));
  fake.on('DELETE', EVENT, one((req, email, cal, e) => {
    if (!e) return notFound();
    if (e.status === 'cancelled') return { status: 410, json: { error: { code: 410, message: 'Resource has been deleted', errors: [{ domain: 'global', reason: 'deleted' }] } } };
    c.cancel(email, cal.id, e.id);
    return { status: 204 };
  }));

  // freeBusy: merged busy intervals of confirmed, opaque events (instances included), clipped
  fake.on('POST', `${BASE}/freeBusy`, (req) => {
    const email = auth(req);
    if (!email) return g.unauthorized;
    const { timeMin, timeMax, items = [] } = req.json ?? {};
    const [from, to] = [Date.parse(timeMin), Date.parse(timeMax)];
    if (Number.isNaN(from) || Number.isNaN(to)) return bad('Bad Request');
    if (to <= from) return bad('The specified time range is empty.', 'timeRangeEmpty');
    const calendars = {};
    for (const { id } of items) {
      const cal = c.calendarOf(email, id);
      if (!cal) {
        calendars[id] = { errors: [{ domain: 'global', reason: 'notFound' }], busy: [] };
        continue;
      }
      const spans = [...cal.events.values()]
        .filter((e) => e.status !== 'cancelled' && e.transparency !== 'transparent' && !(e.attendees ?? []).some((a) => a.self && a.responseStatus === 'declined'))
        .flatMap((e) => instances(e, to))
        .map((e) => [Math.max(ms(e.start), from), Math.min(ms(e.end), to)])
        .filter(([s, t]) => s < t)
        .sort((a, b) => a[0] - b[0]);
      const merged = [];
      for (const [s, t] of spans) {
        const last = merged.at(-1);
        if (last && s <= last[1]) last[1] = Math.max(last[1], t);
        else merged.push([s, t]);
      }
      const iso = (v) => new Date(v).toISOString().replace('.000', '');
      calendars[id] = { busy: merged.map(([s, t]) => ({ start: iso(s), end: iso(t) })) };
    }
    return { json: { kind: 'calendar#freeBusy', timeMin, timeMax, calendars } };
  });

  return c;
}
