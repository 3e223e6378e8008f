// Google Calendar against the fake Google (tests/lib/fake-calendar.mjs), in real workerd:
// connecting (direct credentials, OAuth), a full sync with exact counts, incremental syncs from
// Google's sync tokens (a cancelled event marked deleted; an expired token → a full pass with a
// note), every action with its bad-parameter cases, PATCH semantics that keep Meet data,
// reminders and responses, all-day dates far from UTC, find_slots across daylight-saving
// changes checked against slots computed here with Intl, NOT_AN_ATTENDEE, other users' 404s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGoogle } from '../lib/fake-google.mjs';
import { addFakeCalendar } from '../lib/fake-calendar.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ALICE = 'alice@example.com';
const TEAM = 'team0123@group.calendar.google.com';
const HOLIDAYS = 'holidays@group.v.calendar.google.com';
const EVENT_KEYS = ['id', 'calendarId', 'summary', 'description', 'location', 'start', 'end', 'allDay', 'timeZone', 'attendees', 'organizer', 'recurrence', 'status', 'htmlLink', 'meetingLink', 'created', 'updated'];

/** Free slots computed independently: every whole minute of the range, read in `timeZone`
 * with Intl, kept when it is on the local grid, on a working day, inside the working hours of
 * its local day, and `buffer` away from every busy interval. */
function expectedSlots({ timeMin, timeMax, timeZone, duration, granularity, buffer, start, end, days, busy }) {
  const f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', weekday: 'short' });
  const read = (t) => {
    const p = Object.fromEntries(f.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
    return { day: `${p.year}-${p.month}-${p.day}`, minute: Number(p.hour) * 60 + Number(p.minute), weekday: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(p.weekday) + 1 };
  };
  const hm = (s) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3));
  const [from, to, len, pad] = [Date.parse(timeMin), Date.parse(timeMax), duration * 60000, buffer * 60000];
  const out = [];
  for (let t = Math.ceil(from / 60000) * 60000; t + len <= to; t += 60000) {
    const a = read(t);
    if (a.minute % granularity || !days.includes(a.weekday) || a.minute < hm(start)) continue;
    const b = read(t + len);
    if (b.day !== a.day || b.minute > hm(end)) continue;
    if (busy.some(([s, e]) => s < t + len + pad && t - pad < e)) continue;
    out.push({ start: new Date(t).toISOString().replace('.000', ''), end: new Date(t + len).toISOString().replace('.000', '') });
  }
  return out;
}

test('Google Calendar: connect, sync, actions', async (t) => {
  const g = await startFakeGoogle(t);
  const cal = addFakeCalendar(g);
  const svc = await startService(t, { vars: { ...g.vars(), SYNC_REQUEST_BUDGET: '1000' } });
  const alice = await svc.createUser({ email: ALICE });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });
  const grant = (email) => {
    const creds = g.grant(email);
    knownSecrets.add(creds.access_token);
    knownSecrets.add(creds.refresh_token);
    return creds;
  };
  const count = async (id, type, extra = '') => {
    let n = 0;
    let cursor;
    do {
      const r = await api('GET', `/api/integrations/${id}/entities/${type}?limit=100${cursor ? `&cursor=${cursor}` : ''}${extra}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      n += r.body.entities.length;
      cursor = r.body.hasMore ? r.body.cursor : undefined;
    } while (cursor);
    return n;
  };
  // An event is stored under `calendarId/eventId` (one event can sit on two calendars); its
  // entity keeps Google's id in `id`.
  const entity = async (id, type, eventOrCalendarId) => {
    let cursor;
    do {
      const r = await api('GET', `/api/integrations/${id}/entities/${type}?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      const hit = r.body.entities.find((e) => e.id === eventOrCalendarId || e._sync.externalId === eventOrCalendarId);
      if (hit) return hit;
      cursor = r.body.hasMore ? r.body.cursor : undefined;
    } while (cursor);
    return undefined;
  };
  const waitSync = async (id, syncId) => {
    const t0 = Date.now();
    for (;;) {
      const r = await api('GET', `/api/integrations/${id}/sync/${syncId}`);
      if (['completed', 'failed'].includes(r.body.status)) return r.body;
      if (Date.now() - t0 > 30000) throw new Error(`sync stuck: ${JSON.stringify(r.body)}`);
      await sleep(50);
    }
  };
  const sync = async (id, body = {}) => {
    const r = await api('POST', `/api/integrations/${id}/sync`, body);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return waitSync(id, r.body.syncId);
  };
  const calendarRequests = () => g.fake.requests.filter((r) => r.path.startsWith('/calendar/v3/'));

  // Alice's Google account: her primary calendar (260 events, one already deleted), a selected
  // team calendar (5 events) and an unselected holidays calendar (3 events).
  cal.addAccount(ALICE, { timeZone: 'America/New_York', summary: 'Alice' });
  cal.addCalendar(ALICE, { id: TEAM, summary: 'Team', selected: true, timeZone: 'Europe/Berlin' });
  cal.addCalendar(ALICE, { id: HOLIDAYS, summary: 'Holidays', selected: false, accessRole: 'reader' });
  const day = (n, h = 9) => new Date(Date.UTC(2026, 1, 1 + n, h)).toISOString().replace('.000', '');
  const primaryEvents = Array.from({ length: 260 }, (_, i) => cal.addEvent(ALICE, 'primary', { summary: `Event ${i}`, start: { dateTime: day(i % 60) }, end: { dateTime: day(i % 60, 10) } }));
  cal.cancel(ALICE, 'primary', cal.addEvent(ALICE, 'primary', { summary: 'Gone before', start: { dateTime: day(1) }, end: { dateTime: day(1, 10) } }).id);
  for (let i = 0; i < 5; i++) cal.addEvent(ALICE, TEAM, { summary: `Team ${i}`, start: { date: `2026-03-0${i + 1}` }, end: { date: `2026-03-0${i + 2}` } });
  for (let i = 0; i < 3; i++) cal.addEvent(ALICE, HOLIDAYS, { summary: `Holiday ${i}`, start: { date: `2026-12-2${i}` }, end: { date: `2026-12-2${i + 1}` } });
  let integ;
  const act = (name, params, user = alice, id = integ.id) => api('POST', `/api/integrations/${id}/actions/${name}`, params, user);
  const ok = async (name, params) => {
    const r = await act(name, params);
    assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.body)}`);
    return r.body.result;
  };
  const invalid = async (name, params, field) => {
    const r = await act(name, params);
    assert.deepEqual([r.status, r.body.code], [400, 'VALIDATION_ERROR'], `${name} ${JSON.stringify(params)}: ${JSON.stringify(r.body)}`);
    assert.ok(r.body.details.some((d) => d.field === field), `${name}: expected ${field} in ${JSON.stringify(r.body.details)}`);
    return r.body;
  };

  await t.test('connecting: direct credentials are checked with Google; OAuth asks for the calendar scopes', async () => {
    const creds = grant(ALICE);
    const missing = await api('POST', '/api/integrations', { service: 'google_calendar', credentials: { refresh_token: creds.refresh_token }, config: {} });
    assert.deepEqual([missing.status, missing.body.code], [400, 'INVALID_CREDENTIALS']);
    const wrong = await api('POST', '/api/integrations', { service: 'google_calendar', credentials: { access_token: 'ya29.not-a-token' }, config: {} });
    assert.deepEqual([wrong.status, wrong.body.code], [400, 'INTEGRATION_AUTH_FAILED']);
    const badExpiry = await api('POST', '/api/integrations', { service: 'google_calendar', credentials: { ...creds, expires_at: 'soon' }, config: {} });
    assert.deepEqual([badExpiry.status, badExpiry.body.code], [400, 'INVALID_CREDENTIALS']);
    // expires_at in milliseconds is taken as the same instant in seconds.
    const r = await api('POST', '/api/integrations', { service: 'google_calendar', credentials: { ...creds, expires_at: Number(creds.expires_at) * 1000 }, config: { syncFrequency: 'manual' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    integ = r.body.integration;
    assert.equal(integ.service, 'google_calendar');
    const stored = (await (await svc.apiKeys(alice.userId))('retrieve', { userId: alice.userId, service: `integration:${integ.id}` })).body.credentials;
    assert.equal(stored.expires_at, creds.expires_at);
    const avail = (await api('GET', '/api/integrations/available')).body.services.find((s) => s.service === 'google_calendar');
    assert.deepEqual(avail.supportedEntities, ['calendars', 'events']);
    assert.deepEqual(avail.actions, ['list_calendars', 'list_events', 'get_event', 'create_event', 'update_event', 'delete_event', 'quick_add', 'respond', 'free_busy', 'find_slots']);
    const start = await api('GET', `/api/integrations/google_calendar/oauth?redirect_uri=${encodeURIComponent('https://app.example.com/cb')}`, undefined, bob);
    assert.equal(start.status, 200, JSON.stringify(start.body));
    const url = new URL(start.body.url);
    assert.equal(`${url.origin}${url.pathname}`, `${g.accountsUrl}/o/oauth2/v2/auth`);
    assert.deepEqual(url.searchParams.get('scope').split(' '), ['https://www.googleapis.com/auth/calendar', 'https://www.googleapis.com/auth/calendar.events']);
    assert.deepEqual([url.searchParams.get('access_type'), url.searchParams.get('prompt'), url.searchParams.get('code_challenge_method')], ['offline', 'consent', 'S256']);
    cal.addAccount('bob@example.com');
    const code = g.issueCode({ email: 'bob@example.com', challenge: url.searchParams.get('code_challenge'), redirectUri: 'https://app.example.com/cb' });
    const cb = await api('POST', '/api/integrations/google_calendar/oauth/callback', { code, state: start.body.state, redirect_uri: 'https://app.example.com/cb' }, bob);
    assert.equal(cb.status, 200, JSON.stringify(cb.body));
    assert.equal(cb.body.integration.status, 'active');
    for (const v of g.accessTokens.keys()) knownSecrets.add(v);
    for (const v of g.refreshTokens.keys()) knownSecrets.add(v);
  });

  await t.test('a full sync stores the calendars and the events of the selected ones, with exact counts', async () => {
    const done = await sync(integ.id, { fullSync: true });
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(await count(integ.id, 'calendars'), 3);
    assert.equal(await count(integ.id, 'events', '&includeDeleted=false'), 265);
    assert.equal(done.progress, 3 + 261 + 5, 'the deleted one was read too (as a deletion)');
    const lists = calendarRequests().filter((r) => r.path.endsWith('/events') && r.method === 'GET');
    assert.deepEqual(lists.map((r) => decodeURIComponent(r.path.split('/')[4])), [ALICE, ALICE, TEAM], 'two pages of 250, then the team calendar; never the unselected one');
    for (const r of lists) {
      assert.deepEqual([r.query.get('singleEvents'), r.query.get('showDeleted'), r.query.get('syncToken')], ['false', 'true', null]);
    }
    const team = await entity(integ.id, 'calendars', TEAM);
    assert.deepEqual([team.summary, team.selected, team.primary, team.timeZone], ['Team', true, false, 'Europe/Berlin']);
    const e = await entity(integ.id, 'events', primaryEvents[7].id);
    const { _sync, ...shape } = e;
    assert.equal(_sync.deleted, false);
    assert.deepEqual(shape, {
      id: primaryEvents[7].id, calendarId: ALICE, summary: 'Event 7', start: day(7), end: day(7, 10), allDay: false, attendees: [],
      organizer: { email: ALICE, self: true }, status: 'confirmed', htmlLink: primaryEvents[7].htmlLink, created: primaryEvents[7].created, updated: primaryEvents[7].updated,
    });
    assert.ok(Object.keys(shape).every((k) => EVENT_KEYS.includes(k)));
  });

  await t.test('an incremental sync reads only the changes since Google\'s sync token', async () => {
    const before = calendarRequests().length;
    cal.touch(ALICE, 'primary', primaryEvents[3].id, { summary: 'Renamed upstream' });
    cal.cancel(ALICE, 'primary', primaryEvents[4].id);
    cal.addEvent(ALICE, TEAM, { summary: 'New team event', start: { dateTime: '2026-03-20T10:00:00+01:00', timeZone: 'Europe/Berlin' }, end: { dateTime: '2026-03-20T11:00:00+01:00', timeZone: 'Europe/Berlin' } });
    const done = await sync(integ.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.fullSync, false);
    assert.equal(done.progress, 3 + 3, 'three calendars (always listed whole) and three changes');
    const lists = calendarRequests().slice(before).filter((r) => r.path.endsWith('/events'));
    assert.equal(lists.length, 2);
    assert.ok(lists.every((r) => r.query.get('syncToken')), 'both calendars read from their sync tokens');
    assert.equal((await entity(integ.id, 'events', primaryEvents[3].id)).summary, 'Renamed upstream');
    const gone = await entity(integ.id, 'events', primaryEvents[4].id);
    assert.equal(gone._sync.deleted, true);
    assert.equal(await count(integ.id, 'events', '&includeDeleted=false'), 265);
    assert.deepEqual(done.notes, []);
  });

  await t.test('a sync token Google no longer honours (410) restarts that calendar in full, with a note', async () => {
    cal.expireSyncTokens();
    cal.touch(ALICE, TEAM, [...cal.calendarOf(ALICE, TEAM).events.keys()][0], { summary: 'Team 0 again' });
    const before = calendarRequests().length;
    const done = await sync(integ.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.notes.length, 2, JSON.stringify(done.notes));
    assert.ok(done.notes.every((n) => n.includes('Google Calendar invalidated the sync token')), JSON.stringify(done.notes));
    const lists = calendarRequests().slice(before).filter((r) => r.path.endsWith('/events'));
    assert.deepEqual(lists.map((r) => !!r.query.get('syncToken')), [true, false, false, true, false]);
    assert.equal(await count(integ.id, 'events', '&includeDeleted=false'), 265);
    assert.equal(await count(integ.id, 'events'), 266);
    // The next run is incremental again, from the tokens of the full pass.
    const after = calendarRequests().length;
    assert.equal((await sync(integ.id)).progress, 3);
    assert.ok(calendarRequests().slice(after).filter((r) => r.path.endsWith('/events')).every((r) => r.query.get('syncToken')));
  });

  await t.test('filters.calendars: only the calendars it lists are walked, selected or not; another service\'s filter is refused', async () => {
    for (const filters of [{ repositories: ['a/b'] }, { calendars: 'primary' }, { calendars: [] }, { calendars: [''] }]) {
      const r = await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual', filters } });
      assert.deepEqual([r.status, r.body.code], [400, 'VALIDATION_ERROR'], JSON.stringify(filters));
      assert.equal(r.body.details[0].field, `config.filters.${Object.keys(filters)[0]}`);
    }
    const set = await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual', filters: { calendars: [HOLIDAYS] } } });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.integration.config.filters, { calendars: [HOLIDAYS] });
    const before = calendarRequests().length;
    const done = await sync(integ.id, { fullSync: true });
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const lists = calendarRequests().slice(before).filter((r) => r.path.endsWith('/events'));
    assert.deepEqual(lists.map((r) => decodeURIComponent(r.path.split('/')[4])), [HOLIDAYS], 'the unselected calendar it names, and only it');
    assert.equal(await count(integ.id, 'events', '&includeDeleted=false'), 3, 'the other calendars\' events are no longer synced');
    // Without the filter, the selected calendars again.
    assert.equal((await api('PATCH', `/api/integrations/${integ.id}`, { config: { syncFrequency: 'manual' } })).status, 200);
    assert.equal((await sync(integ.id, { fullSync: true })).status, 'completed');
    assert.equal(await count(integ.id, 'events', '&includeDeleted=false'), 265);
  });

  await t.test('list_calendars, list_events, get_event', async () => {
    const cals = await ok('list_calendars', {});
    assert.deepEqual(cals.calendars.map((c) => [c.id, c.primary, c.selected]), [[ALICE, true, true], [TEAM, false, true], [HOLIDAYS, false, false]]);
    assert.deepEqual(Object.keys(cals.calendars[1]).sort(), ['accessRole', 'backgroundColor', 'id', 'primary', 'selected', 'summary', 'timeZone']);
    const ranged = await ok('list_events', { timeMin: '2026-02-03T00:00:00Z', timeMax: '2026-02-04T00:00:00Z' });
    assert.ok(ranged.events.length > 0 && ranged.events.every((e) => e.start.startsWith('2026-02-03')));
    const sent = calendarRequests().at(-1);
    assert.deepEqual([sent.query.get('singleEvents'), sent.query.get('orderBy'), sent.query.get('maxResults')], ['true', 'startTime', '50']);
    const first = await ok('list_events', { maxResults: 100 });
    assert.equal(first.events.length, 100);
    assert.ok(first.nextPageToken);
    const second = await ok('list_events', { maxResults: 100, pageToken: first.nextPageToken });
    assert.notEqual(second.events[0].id, first.events[0].id);
    const found = await ok('list_events', { calendarId: TEAM, query: 'new team', singleEvents: false });
    assert.deepEqual(found.events.map((e) => [e.summary, e.calendarId, e.timeZone]), [['New team event', TEAM, 'Europe/Berlin']]);
    assert.equal(calendarRequests().at(-1).query.get('orderBy'), null);
    const one = await ok('get_event', { eventId: primaryEvents[9].id });
    assert.deepEqual([one.id, one.calendarId, one.summary, one.allDay], [primaryEvents[9].id, ALICE, 'Event 9', false]);
    const missing = await act('get_event', { eventId: 'nosuchevent' });
    assert.equal(missing.status, 404);
    await invalid('list_events', { timeMin: 'yesterday' }, 'timeMin');
    await invalid('list_events', { maxResults: 0 }, 'maxResults');
    await invalid('list_events', { timeMin: '2026-02-04T00:00:00Z', timeMax: '2026-02-03T00:00:00Z' }, 'timeMax');
    await invalid('get_event', {}, 'eventId');
    await invalid('list_calendars', { extra: 1 }, 'extra');
  });

  let meeting;
  await t.test('create_event: a timed event with attendees, reminders and a Google Meet', async () => {
    const before = g.fake.requests.length;
    meeting = await ok('create_event', {
      summary: 'Planning', description: 'Quarterly', location: 'Room 1', start: '2026-03-10T15:00:00Z', end: '2026-03-10T16:00:00Z',
      timeZone: 'America/New_York', attendees: ['carol@example.com', { email: 'dan@example.com', name: 'Dan', optional: true }],
      meet: true, reminders: { overrides: [{ method: 'popup', minutes: 15 }] }, sendUpdates: 'all',
    });
    const insert = g.fake.requests.slice(before).find((r) => r.method === 'POST' && r.path.endsWith('/events'));
    assert.deepEqual([insert.query.get('conferenceDataVersion'), insert.query.get('sendUpdates')], ['1', 'all']);
    const request = insert.json.conferenceData.createRequest;
    assert.equal(request.conferenceSolutionKey.type, 'hangoutsMeet');
    assert.match(request.requestId, /^[0-9a-f-]{36}$/);
    const stored = cal.event(ALICE, 'primary', meeting.id);
    assert.equal(meeting.meetingLink, stored.conferenceData.entryPoints[0].uri);
    assert.match(meeting.meetingLink, /^https:\/\/meet\.google\.com\//);
    assert.deepEqual(stored.reminders, { useDefault: false, overrides: [{ method: 'popup', minutes: 15 }] });
    assert.deepEqual(meeting.attendees, [
      { email: 'carol@example.com', responseStatus: 'needsAction', organizer: false, self: false, optional: false },
      { email: 'dan@example.com', name: 'Dan', responseStatus: 'needsAction', organizer: false, self: false, optional: true },
    ]);
    assert.deepEqual([meeting.summary, meeting.description, meeting.location, meeting.start, meeting.timeZone, meeting.calendarId], ['Planning', 'Quarterly', 'Room 1', '2026-03-10T15:00:00Z', 'America/New_York', ALICE]);
    assert.ok(Object.keys(meeting).every((k) => EVENT_KEYS.includes(k)), Object.keys(meeting).join());
    // Each Meet request is a new one; the created event is stored like a synced one.
    const other = await ok('create_event', { summary: 'Another', start: '2026-03-11T15:00:00Z', meet: true });
    assert.equal(other.end, '2026-03-11T16:00:00Z', 'one hour by default');
    assert.equal(new Set(cal.meetRequests).size, cal.meetRequests.length);
    assert.equal((await entity(integ.id, 'events', meeting.id)).meetingLink, meeting.meetingLink);
    // Recurrence lines are checked before Google sees them.
    const weekly = await ok('create_event', { summary: 'Weekly', start: '2026-03-02T14:00:00Z', timeZone: 'Europe/Berlin', recurrence: ['RRULE:FREQ=WEEKLY;COUNT=4', 'EXDATE:20260309T140000Z'] });
    assert.deepEqual(weekly.recurrence, ['RRULE:FREQ=WEEKLY;COUNT=4', 'EXDATE:20260309T140000Z']);
    const instances = await ok('list_events', { timeMin: '2026-03-01T00:00:00Z', timeMax: '2026-03-31T00:00:00Z', query: 'Weekly' });
    assert.deepEqual(instances.events.map((e) => e.start), ['2026-03-02T14:00:00Z', '2026-03-16T14:00:00Z', '2026-03-23T14:00:00Z'], 'expanded, the exception left out');
    const sentBefore = g.fake.requests.length;
    const bad = await invalid('create_event', { summary: 'x', start: '2026-03-02T14:00:00Z', recurrence: ['RRULE:FREQ=WEEKLY', 'RRULE:FREQ=DAILY;BYDAY=XX'] }, 'recurrence.1');
    assert.match(bad.details[0].message, /BYDAY value 'XX' is not a weekday/);
    assert.match(bad.error, /recurrence\.1/);
    await invalid('create_event', { start: '2026-03-02T14:00:00Z' }, 'summary');
    await invalid('create_event', { summary: 'x', start: 'tomorrow at 9' }, 'start');
    await invalid('create_event', { summary: 'x', start: '2026-03-02T14:00:00Z', end: '2026-03-02T13:00:00Z' }, 'end');
    await invalid('create_event', { summary: 'x', start: '2026-03-02T14:00:00Z', timeZone: 'Mars/Olympus_Mons' }, 'timeZone');
    await invalid('create_event', { summary: 'x', start: '2026-03-02', sendUpdates: 'everyone' }, 'sendUpdates');
    await invalid('create_event', { summary: 'x', start: '2026-03-02', attendees: ['not-an-address'] }, 'attendees.0');
    await invalid('create_event', { summary: 'x', start: '2026-03-02', reminders: { overrides: [{ method: 'sms', minutes: 5 }] } }, 'reminders.overrides.0.method');
    assert.equal(g.fake.requests.length, sentBefore, 'nothing invalid reached Google');
  });

  await t.test('all-day events keep their dates, far from UTC too (Pacific/Kiritimati, +14:00)', async () => {
    const holiday = await ok('create_event', { summary: 'Kiritimati day', start: '2026-06-15', allDay: true, timeZone: 'Pacific/Kiritimati' });
    assert.deepEqual([holiday.start, holiday.end, holiday.allDay], ['2026-06-15', '2026-06-16', true]);
    // 10:30 UTC on the 14th is already the 15th in Kiritimati: the date there is the one kept.
    const fromInstant = await ok('create_event', { summary: 'Kiritimati 2', start: '2026-06-14T10:30:00Z', allDay: true, timeZone: 'Pacific/Kiritimati' });
    assert.deepEqual([fromInstant.start, fromInstant.end], ['2026-06-15', '2026-06-16']);
    const trip = await ok('create_event', { summary: 'Trip', start: '2026-12-30', end: '2027-01-02' });
    assert.deepEqual([trip.start, trip.end, trip.allDay], ['2026-12-30', '2027-01-02', true]);
    assert.deepEqual(cal.event(ALICE, 'primary', trip.id).start, { date: '2026-12-30' });
    const read = await ok('get_event', { eventId: holiday.id });
    assert.deepEqual([read.start, read.end], ['2026-06-15', '2026-06-16']);
    // Moving only the start keeps the length; a timed event can become all-day and back.
    const moved = await ok('update_event', { eventId: trip.id, start: '2027-02-10' });
    assert.deepEqual([moved.start, moved.end], ['2027-02-10', '2027-02-13']);
    const allDay = await ok('update_event', { eventId: meeting.id, allDay: true });
    assert.deepEqual([allDay.start, allDay.end, allDay.allDay], ['2026-03-10', '2026-03-11', true]);
    const timed = await ok('update_event', { eventId: meeting.id, start: '2026-03-10T15:00:00Z', end: '2026-03-10T16:00:00Z' });
    assert.deepEqual([timed.start, timed.end, timed.allDay], ['2026-03-10T15:00:00Z', '2026-03-10T16:00:00Z', false]);
    await invalid('update_event', { eventId: holiday.id, allDay: false }, 'start');
    await invalid('create_event', { summary: 'x', start: '2026-06-15', end: '2026-06-15' }, 'end');
    const done = await sync(integ.id);
    assert.equal(done.status, 'completed');
    const synced = await entity(integ.id, 'events', fromInstant.id);
    assert.deepEqual([synced.start, synced.end, synced.allDay, synced.timeZone], ['2026-06-15', '2026-06-16', true, 'Pacific/Kiritimati']);
  });

  await t.test('update_event changes only what it is given: Meet, reminders and responses survive a new title', async () => {
    const stored = cal.event(ALICE, 'primary', meeting.id);
    stored.attendees[0].responseStatus = 'accepted';
    stored.attendees[1].responseStatus = 'tentative';
    const conference = structuredClone(stored.conferenceData);
    const before = g.fake.requests.length;
    const renamed = await ok('update_event', { eventId: meeting.id, summary: 'Planning (moved room)' });
    const sent = g.fake.requests.slice(before).filter((r) => r.path.startsWith('/calendar/'));
    assert.deepEqual(sent.map((r) => r.method), ['PATCH'], 'one request, no read-modify-write');
    assert.deepEqual(sent[0].json, { summary: 'Planning (moved room)' });
    assert.equal(renamed.summary, 'Planning (moved room)');
    assert.equal(renamed.meetingLink, meeting.meetingLink);
    assert.deepEqual(renamed.attendees.map((a) => a.responseStatus), ['accepted', 'tentative']);
    const after = cal.event(ALICE, 'primary', meeting.id);
    assert.deepEqual(after.conferenceData, conference);
    assert.deepEqual(after.reminders, { useDefault: false, overrides: [{ method: 'popup', minutes: 15 }] });
    // Attendees given again keep the responses they had; a new one starts at needsAction.
    const invited = await ok('update_event', { eventId: meeting.id, attendees: ['CAROL@example.com', 'erin@example.com'], sendUpdates: 'none' });
    assert.deepEqual(invited.attendees.map((a) => [a.email, a.responseStatus]), [['carol@example.com', 'accepted'], ['erin@example.com', 'needsAction']]);
    // meet: false removes the conference; a move keeps the length.
    const noMeet = await ok('update_event', { eventId: meeting.id, meet: false, start: '2026-03-12T15:00:00Z' });
    assert.equal(noMeet.meetingLink, undefined);
    assert.deepEqual([noMeet.start, noMeet.end], ['2026-03-12T15:00:00Z', '2026-03-12T16:00:00Z']);
    await invalid('update_event', { eventId: meeting.id }, '');
    await invalid('update_event', { eventId: meeting.id, recurrence: ['RRULE:COUNT=3'] }, 'recurrence.0');
    await invalid('update_event', { eventId: meeting.id, reminders: { useDefault: true, overrides: [] } }, 'reminders.useDefault');
    assert.equal((await act('update_event', { eventId: 'nosuchevent', summary: 'x' })).status, 404);
  });

  await t.test('respond changes only the account\'s own attendee entry; NOT_AN_ATTENDEE otherwise', async () => {
    const invite = cal.addEvent(ALICE, 'primary', {
      summary: 'Invite', start: { dateTime: '2026-04-01T10:00:00Z' }, end: { dateTime: '2026-04-01T11:00:00Z' }, organizer: { email: 'boss@example.com' },
      attendees: [{ email: 'boss@example.com', responseStatus: 'accepted' }, { email: ALICE }, { email: 'frank@example.com', responseStatus: 'declined' }],
    });
    const r = await ok('respond', { eventId: invite.id, response: 'tentative' });
    assert.deepEqual(r.attendees.map((a) => [a.email, a.responseStatus, a.self]), [['boss@example.com', 'accepted', false], [ALICE, 'tentative', true], ['frank@example.com', 'declined', false]]);
    assert.equal(cal.event(ALICE, 'primary', invite.id).attendees[1].responseStatus, 'tentative');
    const notMine = cal.addEvent(ALICE, 'primary', { summary: 'FYI', start: { dateTime: '2026-04-02T10:00:00Z' }, end: { dateTime: '2026-04-02T11:00:00Z' }, organizer: { email: 'boss@example.com' }, attendees: [{ email: 'boss@example.com' }] });
    const refused = await act('respond', { eventId: notMine.id, response: 'accepted' });
    assert.deepEqual([refused.status, refused.body.code], [400, 'NOT_AN_ATTENDEE']);
    assert.equal(cal.event(ALICE, 'primary', notMine.id).attendees[0].responseStatus, 'needsAction', 'nothing changed');
    await invalid('respond', { eventId: invite.id, response: 'maybe' }, 'response');
  });

  await t.test('quick_add and delete_event (an event already gone counts as deleted)', async () => {
    const quick = await ok('quick_add', { text: 'Lunch with Ana on 2026-04-03 at 12:30' });
    assert.deepEqual([quick.summary, quick.start, quick.end], ['Lunch with Ana', '2026-04-03T12:30:00Z', '2026-04-03T13:30:00Z']);
    assert.ok(await entity(integ.id, 'events', quick.id));
    assert.deepEqual(await ok('delete_event', { eventId: quick.id, sendUpdates: 'none' }), { deleted: true });
    assert.equal(cal.event(ALICE, 'primary', quick.id).status, 'cancelled');
    assert.equal((await entity(integ.id, 'events', quick.id))._sync.deleted, true);
    assert.deepEqual(await ok('delete_event', { eventId: quick.id }), { deleted: true }, '410: deleted before');
    assert.deepEqual(await ok('delete_event', { eventId: 'neverexisted' }), { deleted: true }, '404: not there');
    await invalid('quick_add', { text: '' }, 'text');
    await invalid('delete_event', { eventId: quick.id, sendUpdates: 'loud' }, 'sendUpdates');
  });

  await t.test('free_busy answers each calendar\'s busy intervals', async () => {
    const fb = await ok('free_busy', { timeMin: '2026-04-01T00:00:00Z', timeMax: '2026-04-03T00:00:00Z', calendars: ['primary', TEAM] });
    assert.deepEqual(fb, { calendars: [
      // Event 59 (09:00-10:00) and the invitation (10:00-11:00) touch: one interval.
      { id: 'primary', busy: [{ start: '2026-04-01T09:00:00Z', end: '2026-04-01T11:00:00Z' }, { start: '2026-04-02T10:00:00Z', end: '2026-04-02T11:00:00Z' }] },
      { id: TEAM, busy: [] },
    ] });
    const only = await ok('free_busy', { timeMin: '2026-04-01T00:00:00Z', timeMax: '2026-04-01T12:00:00Z' });
    assert.deepEqual(only.calendars.map((c) => [c.id, c.busy.length]), [['primary', 1]]);
    await invalid('free_busy', { timeMin: '2026-04-01T00:00:00Z', timeMax: '2026-04-02T00:00:00Z', calendars: ['primary', 'nobody@example.com'] }, 'calendars.1');
    await invalid('free_busy', { timeMin: '2026-04-01T00:00:00Z' }, 'timeMax');
    await invalid('free_busy', { timeMin: '2026-04-01T00:00:00Z', timeMax: '2026-04-02T00:00:00Z', calendars: [] }, 'calendars');
  });

  await t.test('find_slots across daylight-saving changes, busy times on two calendars, against Intl', async () => {
    const busyOf = (list) => list.map(([s, e]) => [Date.parse(s), Date.parse(e)]);
    // New York springs forward on Sunday 2026-03-08.
    const ny = [
      [ALICE, '2026-03-06T20:00:00Z', '2026-03-06T21:00:00Z'], // Fri 15:00-16:00 EST
      [ALICE, '2026-03-08T15:00:00Z', '2026-03-08T16:30:00Z'], // Sun 11:00-12:30 EDT
      [TEAM, '2026-03-08T16:00:00Z', '2026-03-08T17:00:00Z'], // overlaps the one before
      [TEAM, '2026-03-09T13:00:00Z', '2026-03-09T14:00:00Z'], // Mon 09:00-10:00 EDT
      [TEAM, '2026-03-09T14:00:00Z', '2026-03-09T14:30:00Z'], // touching it
    ];
    for (const [c, s, e] of ny) cal.addEvent(ALICE, c, { summary: 'Busy', start: { dateTime: s }, end: { dateTime: e } });
    const q = { durationMinutes: 45, timeMin: '2026-03-06T00:00:00Z', timeMax: '2026-03-10T00:00:00Z', calendars: ['primary', TEAM], timeZone: 'America/New_York', granularityMinutes: 30, bufferMinutes: 10, workingHours: { start: '09:00', end: '17:00', days: [1, 2, 3, 4, 5, 7] }, maxSlots: 500 };
    const got = await ok('find_slots', q);
    const want = expectedSlots({ ...q, timeZone: q.timeZone, duration: 45, granularity: 30, buffer: 10, start: '09:00', end: '17:00', days: q.workingHours.days, busy: busyOf(ny.map(([, s, e]) => [s, e])) });
    assert.deepEqual(got.slots, want);
    assert.ok(want.length > 20 && want.length < 500);
    assert.equal(got.slots[0].start, '2026-03-06T14:00:00Z', 'Friday 09:00 EST');
    assert.ok(got.slots.some((s) => s.start === '2026-03-08T13:00:00Z'), 'Sunday 09:00 EDT');
    assert.ok(!got.slots.some((s) => s.start.startsWith('2026-03-07')), 'Saturday is not a working day');

    // Berlin falls back on Sunday 2026-10-25.
    const berlin = [
      [TEAM, '2026-10-23T07:30:00Z', '2026-10-23T08:15:00Z'], // Fri 09:30-10:15 CEST
      [TEAM, '2026-10-25T07:00:00Z', '2026-10-25T08:00:00Z'], // Sun 08:00-09:00 CET
      [ALICE, '2026-10-26T09:00:00Z', '2026-10-26T10:00:00Z'], // Mon 10:00-11:00 CET
    ];
    for (const [c, s, e] of berlin) cal.addEvent(ALICE, c, { summary: 'Busy', start: { dateTime: s }, end: { dateTime: e } });
    const b = { durationMinutes: 60, timeMin: '2026-10-23T00:00:00Z', timeMax: '2026-10-27T00:00:00Z', calendars: [TEAM, 'primary'], timeZone: 'Europe/Berlin', granularityMinutes: 60, workingHours: { start: '08:00', end: '18:00', days: [1, 2, 3, 4, 5, 7] }, maxSlots: 500 };
    const gotB = await ok('find_slots', b);
    const wantB = expectedSlots({ ...b, duration: 60, granularity: 60, buffer: 0, start: '08:00', end: '18:00', days: b.workingHours.days, busy: busyOf(berlin.map(([, s, e]) => [s, e])) });
    assert.deepEqual(gotB.slots, wantB);
    assert.equal(gotB.slots[0].start, '2026-10-23T06:00:00Z', 'Friday 08:00 CEST');
    assert.equal(gotB.slots.find((s) => s.start.startsWith('2026-10-25')).start, '2026-10-25T08:00:00Z', 'Sunday 09:00 CET (08:00 is busy)');
    assert.equal(gotB.slots.filter((s) => s.start.startsWith('2026-10-25')).length, 9);

    // Defaults (UTC, 09:00-17:00 Monday to Friday, 15-minute grid) and the limits.
    const plain = await ok('find_slots', { durationMinutes: 30, timeMin: '2026-03-16T00:00:00Z', timeMax: '2026-03-17T00:00:00Z', calendars: [HOLIDAYS] });
    assert.equal(plain.slots.length, 31);
    assert.deepEqual(plain.slots[0], { start: '2026-03-16T09:00:00Z', end: '2026-03-16T09:30:00Z' });
    const capped = await ok('find_slots', { durationMinutes: 30, timeMin: '2026-03-16T00:00:00Z', timeMax: '2026-03-20T00:00:00Z', calendars: [HOLIDAYS] });
    assert.equal(capped.slots.length, 50);
    const range = await invalid('find_slots', { durationMinutes: 30, timeMin: '2026-01-01T00:00:00Z', timeMax: '2026-04-01T00:00:00Z' }, 'timeMax');
    assert.match(range.details[0].message, /62 days/);
    await invalid('find_slots', { durationMinutes: 30, timeMin: '2026-03-16T00:00:00Z', timeMax: '2026-03-17T00:00:00Z', timeZone: 'Europe/Atlantis' }, 'timeZone');
    await invalid('find_slots', { durationMinutes: 0, timeMin: '2026-03-16T00:00:00Z', timeMax: '2026-03-17T00:00:00Z' }, 'durationMinutes');
    await invalid('find_slots', { durationMinutes: 30, timeMin: '2026-03-16T00:00:00Z', timeMax: '2026-03-17T00:00:00Z', workingHours: { start: '17:00', end: '09:00' } }, 'workingHours.end');
    await invalid('find_slots', { durationMinutes: 30, timeMin: '2026-03-16T00:00:00Z', timeMax: '2026-03-17T00:00:00Z', workingHours: { days: [0, 8] } }, 'workingHours.days.0');
  });

  await t.test('an expired access token is refreshed once, inside the service', async () => {
    const refreshes = g.refreshes;
    g.expire(ALICE);
    assert.equal((await act('list_calendars', {})).status, 200);
    assert.equal(g.refreshes, refreshes + 1);
    for (const v of g.accessTokens.keys()) knownSecrets.add(v);
  });

  await t.test('other users see none of it', async () => {
    assert.equal((await api('GET', `/api/integrations/${integ.id}`, undefined, bob)).status, 404);
    assert.equal((await act('list_calendars', {}, bob)).status, 404);
    assert.equal((await act('create_event', { summary: 'x', start: '2026-03-02' }, bob)).status, 404);
    assert.equal((await api('GET', `/api/integrations/${integ.id}/entities/events`, undefined, bob)).status, 404);
    assert.equal((await api('POST', `/api/integrations/${integ.id}/sync`, {}, bob)).status, 404);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
