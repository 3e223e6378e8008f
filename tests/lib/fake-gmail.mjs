// A fake Gmail API (users.* under /gmail/v1) on the fake Google server: mailboxes per account
// (the bearer token's), messages kept as raw RFC 5322 text and read back by a real MIME parser
// (postal-mime) into Gmail's `format=full` payload JSON, labels, threads, drafts, send (the raw
// message recorded), and a history of every change with an expiring start id (404 below
// `historyFloor`, as Gmail forgets old history). Faults (401/429/5xx) come from `fake.fault`.
import { randomBytes } from 'node:crypto';
import PostalMime from 'postal-mime';

const SYSTEM_LABELS = ['INBOX', 'SPAM', 'TRASH', 'UNREAD', 'STARRED', 'IMPORTANT', 'SENT', 'DRAFT', 'CHAT',
  'CATEGORY_PERSONAL', 'CATEGORY_SOCIAL', 'CATEGORY_PROMOTIONS', 'CATEGORY_UPDATES', 'CATEGORY_FORUMS'];
const HIDDEN = ['SPAM', 'TRASH'];
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const notFound = (what = 'Requested entity was not found.') => ({ status: 404, json: { error: { code: 404, message: what, status: 'NOT_FOUND', errors: [{ reason: 'notFound', message: what }] } } });
const invalid = (message) => ({ status: 400, json: { error: { code: 400, message, status: 'INVALID_ARGUMENT', errors: [{ reason: 'invalidArgument', message }] } } });
const escapeHtml = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** Gmail's `format=full` payload of a raw message, and its attachments' bytes by id. */
export async function payloadOf(raw, idPrefix = 'att') {
  const e = await PostalMime.parse(raw);
  const headers = e.headers.map((h) => ({ name: h.originalKey ?? h.key, value: h.value }));
  // Text keeps an ISO-8859-1 charset when the message declared one, so readers must decode it.
  const latin1 = /content-type:\s*text\/plain;[^\r\n]*charset="?(iso-8859-1|latin1)/i.test(raw);
  const text = (mime, content, charset = 'UTF-8') => {
    const bytes = Buffer.from(content, charset === 'UTF-8' ? 'utf8' : 'latin1');
    return { mimeType: mime, filename: '', headers: [{ name: 'Content-Type', value: `${mime}; charset="${charset}"` }], body: { size: bytes.length, data: b64url(bytes) } };
  };
  const textPart = e.text !== undefined ? text('text/plain', e.text, latin1 ? 'ISO-8859-1' : 'UTF-8') : undefined;
  const htmlPart = e.html !== undefined ? text('text/html', e.html) : undefined;
  let body = textPart && htmlPart ? { mimeType: 'multipart/alternative', filename: '', headers: [], body: { size: 0 }, parts: [textPart, htmlPart] } : textPart ?? htmlPart;
  const attachments = new Map();
  const atts = e.attachments.map((a, i) => {
    const data = Buffer.from(a.content);
    const attachmentId = `${idPrefix}${i}_${randomBytes(6).toString('hex')}`;
    attachments.set(attachmentId, data);
    return {
      mimeType: a.mimeType, filename: a.filename ?? '',
      headers: [{ name: 'Content-Type', value: `${a.mimeType}; name="${a.filename}"` }, { name: 'Content-Disposition', value: `${a.disposition ?? 'attachment'}; filename="${a.filename}"` }],
      body: { attachmentId, size: data.length },
    };
  });
  body ??= text('text/plain', '');
  const top = atts.length ? { mimeType: 'multipart/mixed', filename: '', body: { size: 0 }, parts: [body, ...atts] } : body;
  const ownHeaders = (top.headers ?? []).filter((h) => !headers.some((x) => x.name.toLowerCase() === h.name.toLowerCase()));
  const payload = { partId: '', ...top, headers: [...headers, ...ownHeaders] };
  const snippetSource = e.text ?? (e.html ?? '').replace(/<[^>]*>/g, ' ');
  return { payload, attachments, parsed: e, snippet: escapeHtml(snippetSource.replace(/\s+/g, ' ').trim().slice(0, 120)) };
}

/** Adds Gmail's routes to the fake Google `g`; answers the fake mailbox state. */
export function addGmail(g) {
  const fake = g.fake;
  let seq = 0x18c2f0a000;
  const newId = () => (seq++).toString(16);
  const mail = {
    boxes: new Map(),
    /** Every message sent (messages.send and drafts.send): {email, raw, threadId, via}. */
    sent: [],
    /** History ids below this are forgotten: history.list answers 404. */
    historyFloor: 0,
    box(email) {
      if (!this.boxes.has(email)) {
        this.boxes.set(email, { email, messages: new Map(), labels: new Map(), drafts: new Map(), history: [], historyId: 1000, labelSeq: 1 });
      }
      return this.boxes.get(email);
    },
    /** Stores a message: `raw` (RFC 5322 text), labels, optional thread and date (ms). */
    async addMessage(email, { raw, labelIds = ['INBOX', 'UNREAD'], threadId, internalDate = Date.now() } = {}) {
      const box = this.box(email);
      const id = newId();
      const { payload, attachments, parsed, snippet } = await payloadOf(raw, `a${id}`);
      const thread = threadId && [...box.messages.values()].some((m) => m.threadId === threadId) ? threadId : threadOf(box, parsed) ?? id;
      const m = { id, threadId: thread, labelIds: [...labelIds], internalDate, payload, attachments, snippet, raw, sizeEstimate: raw.length, messageId: parsed.messageId };
      box.messages.set(id, m);
      record(box, 'messagesAdded', m);
      return m;
    },
    /** Deletes a message for good (as `users.messages.delete`). */
    deleteMessage(email, id) {
      const box = this.box(email);
      const m = box.messages.get(id);
      if (!m) return false;
      box.messages.delete(id);
      record(box, 'messagesDeleted', m);
      return true;
    },
    /** Changes labels as Gmail's UI would (history recorded). */
    relabel(email, id, { add = [], remove = [] }) {
      const box = this.box(email);
      return relabel(box, box.messages.get(id), add, remove);
    },
    /** Forgets all history up to now: the next history.list from an older id answers 404. */
    expireHistory(email) {
      this.historyFloor = this.box(email).historyId + 1;
    },
    userLabel(email, name) {
      const box = this.box(email);
      const id = `Label_${box.labelSeq++}`;
      box.labels.set(id, { id, name, type: 'user', messageListVisibility: 'show', labelListVisibility: 'labelShow' });
      return id;
    },
  };

  const threadOf = (box, parsed) => {
    const refs = `${parsed.inReplyTo ?? ''} ${parsed.references ?? ''}`.match(/<[^>]+>/g) ?? [];
    for (const m of box.messages.values()) if (m.messageId && refs.includes(m.messageId)) return m.threadId;
    return undefined;
  };
  const record = (box, type, m, labelIds) => {
    box.historyId += 1;
    m.historyId = box.historyId;
    const entry = { message: { id: m.id, threadId: m.threadId, labelIds: [...m.labelIds] }, ...(labelIds ? { labelIds } : {}) };
    box.history.push({ id: String(box.historyId), messages: [{ id: m.id, threadId: m.threadId }], [type]: [entry] });
    // A watched mailbox publishes its change (fake-push.mjs).
    mail.onChange?.(box);
  };
  const relabel = (box, m, add, remove) => {
    const added = add.filter((l) => !m.labelIds.includes(l));
    const removed = remove.filter((l) => m.labelIds.includes(l) && !add.includes(l));
    m.labelIds = [...m.labelIds.filter((l) => !removed.includes(l)), ...added];
    if (added.length) record(box, 'labelsAdded', m, added);
    if (removed.length) record(box, 'labelsRemoved', m, removed);
    return m;
  };
  const labelExists = (box, id) => SYSTEM_LABELS.includes(id) || box.labels.has(id);
  const header = (m, name) => m.payload.headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value ?? '';
  const view = (m, format = 'full', only = []) => {
    const base = { id: m.id, threadId: m.threadId, labelIds: [...m.labelIds], snippet: m.snippet, historyId: String(m.historyId), internalDate: String(m.internalDate), sizeEstimate: m.sizeEstimate };
    if (format === 'minimal') return base;
    if (format === 'raw') return { ...base, raw: b64url(Buffer.from(m.raw)) };
    if (format === 'metadata') {
      const wanted = only.map((h) => h.toLowerCase());
      return { ...base, payload: { mimeType: m.payload.mimeType, headers: m.payload.headers.filter((h) => !wanted.length || wanted.includes(h.name.toLowerCase())) } };
    }
    return { ...base, payload: m.payload };
  };
  const asked = (req) => (req.query.get('format') ?? 'full');

  // Gmail's search syntax, the part the tests use.
  const matches = (box, m, q) => {
    const terms = (q ?? '').match(/(?:[^\s"]+:)?"[^"]*"|\S+/g) ?? [];
    return terms.every((t) => {
      const [k, ...rest] = t.includes(':') ? t.split(':') : ['', t];
      const v = rest.join(':').replace(/^"|"$/g, '').toLowerCase();
      const has = (s) => String(s ?? '').toLowerCase().includes(v);
      switch (k.toLowerCase()) {
        case 'from': return has(header(m, 'From'));
        case 'to': return has(header(m, 'To')) || has(header(m, 'Cc'));
        case 'subject': return has(m.subjectText ??= decodeSubject(m));
        case 'is': return { unread: m.labelIds.includes('UNREAD'), read: !m.labelIds.includes('UNREAD'), starred: m.labelIds.includes('STARRED') }[v] ?? false;
        case 'in': return v === 'anywhere' || m.labelIds.includes({ drafts: 'DRAFT' }[v] ?? v.toUpperCase());
        case 'label': return m.labelIds.some((l) => l.toLowerCase() === v || box.labels.get(l)?.name.toLowerCase() === v);
        case 'has': return v === 'attachment' ? m.attachments.size > 0 : false;
        // after:/before: take YYYY/MM/DD (midnight UTC here) or epoch seconds.
        case 'after': case 'before': {
          const at = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(`${v.replace(/\//g, '-')}T00:00:00Z`);
          return k.toLowerCase() === 'after' ? m.internalDate >= at : m.internalDate < at;
        }
        default: return has(m.subjectText ??= decodeSubject(m)) || has(m.snippet) || has(header(m, 'From'));
      }
    });
  };
  const decodeSubject = (m) => m.raw && /^subject:/im.test(m.raw) ? (m.payload.headers.find((h) => h.name.toLowerCase() === 'subject')?.value ?? '').replace(/=\?UTF-8\?[BQ]\?[^?]*\?=/gi, (w) => decodeWord(w)) : '';
  const decodeWord = (w) => {
    const [, , enc, text] = w.split('?');
    return enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64').toString('utf8') : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  };
  const visible = (req, m, q) => {
    const wantsHidden = req.query.get('includeSpamTrash') === 'true' || /\bin:(trash|spam|anywhere)\b/i.test(q ?? '');
    return wantsHidden || !m.labelIds.some((l) => HIDDEN.includes(l));
  };
  const page = (req, list, max, def = 100) => {
    const size = Math.min(Number(req.query.get('maxResults') ?? def) || def, max);
    const start = Number(req.query.get('pageToken') ?? 0);
    const next = start + size < list.length ? String(start + size) : undefined;
    return { items: list.slice(start, start + size), next };
  };
  const auth = (handler) => async (req, match) => {
    const email = g.account(req);
    if (!email) return g.unauthorized;
    return handler(req, mail.box(email), match);
  };
  const newest = (a, b) => b.internalDate - a.internalDate || (a.id < b.id ? 1 : -1);
  const P = (p) => new RegExp(`^/gmail/v1/users/me/${p}$`);

  const send = async (box, raw, threadId, labelIds, via) => {
    const text = Buffer.from(raw ?? '', 'base64url').toString('utf8');
    if (!raw) return { error: invalid("'raw' RFC822 payload message string or uploading message via /upload/* URL required") };
    if (!/^(to|cc|bcc):/im.test(text)) return { error: invalid('Recipient address required') };
    const m = await mail.addMessage(box.email, { raw: text, labelIds, threadId });
    if (via) mail.sent.push({ email: box.email, raw: text, threadId: m.threadId, via });
    return { m };
  };

  fake.on('GET', P('profile'), auth((req, box) => ({ json: { emailAddress: box.email, messagesTotal: box.messages.size, threadsTotal: new Set([...box.messages.values()].map((m) => m.threadId)).size, historyId: String(box.historyId) } })));

  fake.on('GET', P('messages'), auth((req, box) => {
    const q = req.query.get('q') ?? '';
    const labels = req.query.getAll('labelIds');
    const list = [...box.messages.values()].filter((m) => visible(req, m, q) && labels.every((l) => m.labelIds.includes(l)) && matches(box, m, q)).sort(newest);
    const { items, next } = page(req, list, 500);
    return { json: { ...(items.length ? { messages: items.map((m) => ({ id: m.id, threadId: m.threadId })) } : {}), ...(next ? { nextPageToken: next } : {}), resultSizeEstimate: list.length } };
  }));
  fake.on('GET', P('messages/([^/]+)'), auth((req, box, match) => {
    const m = box.messages.get(decodeURIComponent(match[1]));
    return m ? { json: view(m, asked(req), req.query.getAll('metadataHeaders')) } : notFound();
  }));
  fake.on('POST', P('messages/send'), auth(async (req, box) => {
    const { m, error } = await send(box, req.json?.raw, req.json?.threadId, ['SENT'], 'send');
    return error ?? { json: { id: m.id, threadId: m.threadId, labelIds: m.labelIds } };
  }));
  fake.on('POST', P('messages/([^/]+)/modify'), auth((req, box, match) => {
    const m = box.messages.get(decodeURIComponent(match[1]));
    if (!m) return notFound();
    const add = req.json?.addLabelIds ?? [];
    const remove = req.json?.removeLabelIds ?? [];
    const unknown = [...add, ...remove].find((l) => !labelExists(box, l));
    if (unknown) return invalid(`Invalid label: ${unknown}`);
    relabel(box, m, add, remove);
    return { json: { id: m.id, threadId: m.threadId, labelIds: m.labelIds } };
  }));
  fake.on('POST', P('messages/([^/]+)/(trash|untrash)'), auth((req, box, match) => {
    const m = box.messages.get(decodeURIComponent(match[1]));
    if (!m) return notFound();
    if (match[2] === 'trash') relabel(box, m, ['TRASH'], []);
    else relabel(box, m, [], ['TRASH']);
    return { json: { id: m.id, threadId: m.threadId, labelIds: m.labelIds } };
  }));
  fake.on('GET', P('messages/([^/]+)/attachments/([^/]+)'), auth((req, box, match) => {
    const data = box.messages.get(decodeURIComponent(match[1]))?.attachments.get(decodeURIComponent(match[2]));
    return data ? { json: { attachmentId: match[2], size: data.length, data: b64url(data) } } : notFound();
  }));

  const threads = (box, req, q, labels = []) => {
    const byThread = new Map();
    for (const m of [...box.messages.values()].sort(newest)) {
      if (!visible(req, m, q)) continue;
      if (!byThread.has(m.threadId)) byThread.set(m.threadId, []);
      byThread.get(m.threadId).push(m);
    }
    return [...byThread.entries()].filter(([, ms]) => labels.every((l) => ms.some((m) => m.labelIds.includes(l))) && ms.some((m) => matches(box, m, q)));
  };
  fake.on('GET', P('threads'), auth((req, box) => {
    const list = threads(box, req, req.query.get('q') ?? '', req.query.getAll('labelIds'));
    const { items, next } = page(req, list, 500);
    const out = items.map(([id, ms]) => ({ id, snippet: ms[0].snippet, historyId: String(Math.max(...ms.map((m) => m.historyId))) }));
    return { json: { ...(out.length ? { threads: out } : {}), ...(next ? { nextPageToken: next } : {}), resultSizeEstimate: list.length } };
  }));
  fake.on('GET', P('threads/([^/]+)'), auth((req, box, match) => {
    const id = decodeURIComponent(match[1]);
    const ms = [...box.messages.values()].filter((m) => m.threadId === id).sort((a, b) => a.internalDate - b.internalDate || (a.id < b.id ? -1 : 1));
    if (!ms.length) return notFound();
    return { json: { id, historyId: String(Math.max(...ms.map((m) => m.historyId))), messages: ms.map((m) => view(m, asked(req), req.query.getAll('metadataHeaders'))) } };
  }));

  const labelList = (box) => [
    ...SYSTEM_LABELS.map((id) => ({ id, name: id, type: 'system', ...(id.startsWith('CATEGORY_') || id === 'CHAT' ? {} : { messageListVisibility: 'hide', labelListVisibility: 'labelHide' }) })),
    ...box.labels.values(),
  ];
  fake.on('GET', P('labels'), auth((req, box) => ({ json: { labels: labelList(box) } })));
  fake.on('GET', P('labels/([^/]+)'), auth((req, box, match) => {
    const l = labelList(box).find((x) => x.id === decodeURIComponent(match[1]));
    return l ? { json: l } : notFound();
  }));
  fake.on('POST', P('labels'), auth((req, box) => {
    const name = String(req.json?.name ?? '').trim();
    if (!name) return invalid('Invalid label name');
    if (labelList(box).some((l) => l.name.toLowerCase() === name.toLowerCase())) {
      return { status: 409, json: { error: { code: 409, message: 'Label name exists or conflicts', status: 'ALREADY_EXISTS', errors: [{ reason: 'duplicate', message: 'Label name exists or conflicts' }] } } };
    }
    const id = mail.userLabel(box.email, name);
    const l = box.labels.get(id);
    if (req.json?.messageListVisibility) l.messageListVisibility = req.json.messageListVisibility;
    if (req.json?.labelListVisibility) l.labelListVisibility = req.json.labelListVisibility;
    return { json: l };
  }));
  fake.on('DELETE', P('labels/([^/]+)'), auth((req, box, match) => {
    const id = decodeURIComponent(match[1]);
    if (SYSTEM_LABELS.includes(id)) return invalid('Invalid delete request');
    if (!box.labels.delete(id)) return notFound();
    for (const m of box.messages.values()) if (m.labelIds.includes(id)) relabel(box, m, [], [id]);
    return { status: 204 };
  }));

  const draftView = (box, id, format = 'minimal') => {
    const m = box.messages.get(box.drafts.get(id));
    return { id, message: format === 'minimal' ? { id: m.id, threadId: m.threadId, labelIds: m.labelIds } : view(m, format) };
  };
  fake.on('GET', P('drafts'), auth((req, box) => {
    const q = req.query.get('q') ?? '';
    const ids = [...box.drafts.keys()].filter((d) => matches(box, box.messages.get(box.drafts.get(d)), q)).reverse();
    const { items, next } = page(req, ids, 500);
    const drafts = items.map((d) => ({ id: d, message: { id: box.drafts.get(d), threadId: box.messages.get(box.drafts.get(d)).threadId } }));
    return { json: { ...(drafts.length ? { drafts } : {}), ...(next ? { nextPageToken: next } : {}), resultSizeEstimate: ids.length } };
  }));
  fake.on('GET', P('drafts/([^/]+)'), auth((req, box, match) => {
    const id = decodeURIComponent(match[1]);
    return box.drafts.has(id) ? { json: draftView(box, id, asked(req)) } : notFound();
  }));
  fake.on('POST', P('drafts'), auth(async (req, box) => {
    const { m, error } = await send(box, req.json?.message?.raw, req.json?.message?.threadId, ['DRAFT']);
    if (error) return error;
    const id = `r${BigInt(`0x${randomBytes(7).toString('hex')}`)}`;
    box.drafts.set(id, m.id);
    return { json: draftView(box, id) };
  }));
  fake.on('PUT', P('drafts/([^/]+)'), auth(async (req, box, match) => {
    const id = decodeURIComponent(match[1]);
    if (!box.drafts.has(id)) return notFound();
    const { m, error } = await send(box, req.json?.message?.raw, req.json?.message?.threadId, ['DRAFT']);
    if (error) return error;
    mail.deleteMessage(box.email, box.drafts.get(id));
    box.drafts.set(id, m.id);
    return { json: draftView(box, id) };
  }));
  fake.on('POST', P('drafts/send'), auth((req, box) => {
    const id = req.json?.id;
    if (!box.drafts.has(id)) return notFound();
    const m = box.messages.get(box.drafts.get(id));
    box.drafts.delete(id);
    relabel(box, m, ['SENT'], ['DRAFT']);
    mail.sent.push({ email: box.email, raw: m.raw, threadId: m.threadId, via: 'draft' });
    return { json: { id: m.id, threadId: m.threadId, labelIds: m.labelIds } };
  }));
  fake.on('DELETE', P('drafts/([^/]+)'), auth((req, box, match) => {
    const id = decodeURIComponent(match[1]);
    if (!box.drafts.has(id)) return notFound();
    mail.deleteMessage(box.email, box.drafts.get(id));
    box.drafts.delete(id);
    return { status: 204 };
  }));

  const HISTORY_KEYS = { messageAdded: 'messagesAdded', messageDeleted: 'messagesDeleted', labelAdded: 'labelsAdded', labelRemoved: 'labelsRemoved' };
  fake.on('GET', P('history'), auth((req, box) => {
    const start = Number(req.query.get('startHistoryId'));
    if (!start) return invalid('Missing startHistoryId');
    if (start < mail.historyFloor) return notFound();
    const types = req.query.getAll('historyTypes').map((t) => HISTORY_KEYS[t]).filter(Boolean);
    const list = box.history
      .filter((h) => Number(h.id) > start)
      .map((h) => (types.length ? Object.fromEntries(Object.entries(h).filter(([k]) => k === 'id' || k === 'messages' || types.includes(k))) : h))
      .filter((h) => Object.keys(h).some((k) => Object.values(HISTORY_KEYS).includes(k)));
    const { items, next } = page(req, list, 500);
    return { json: { ...(items.length ? { history: items } : {}), ...(next ? { nextPageToken: next } : {}), historyId: String(box.historyId) } };
  }));

  return mail;
}

/** A raw RFC 5322 message for seeding a mailbox (CRLF lines). */
export function rawMessage({ from = 'Sender <sender@example.com>', to = 'me@example.com', cc, subject = 'Hello', text = 'Hello there', html, date = new Date(), messageId, inReplyTo, references, extraHeaders = [], contentType } = {}) {
  const id = messageId ?? `<${randomBytes(8).toString('hex')}@example.com>`;
  const head = [
    `From: ${from}`, `To: ${to}`, ...(cc ? [`Cc: ${cc}`] : []), `Subject: ${subject}`, `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: ${id}`, ...(inReplyTo ? [`In-Reply-To: ${inReplyTo}`] : []), ...(references ? [`References: ${references}`] : []), 'MIME-Version: 1.0', ...extraHeaders,
  ];
  if (html) {
    const b = `b_${randomBytes(6).toString('hex')}`;
    return [...head, `Content-Type: multipart/alternative; boundary="${b}"`, '', `--${b}`, 'Content-Type: text/plain; charset=UTF-8', 'Content-Transfer-Encoding: 8bit', '', text, `--${b}`, 'Content-Type: text/html; charset=UTF-8', '', html, `--${b}--`, ''].join('\r\n');
  }
  return [...head, contentType ?? 'Content-Type: text/plain; charset=UTF-8', 'Content-Transfer-Encoding: 8bit', '', text, ''].join('\r\n');
}
