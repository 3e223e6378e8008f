// A fake Telegram Bot API on 127.0.0.1: /bot<token>/<method> (JSON or multipart) and
// /file/bot<token>/<path>. sendMessage validates HTML the way Telegram does (allowed tags,
// nesting, entities, 4096 characters after parsing) and answers 400 "can't parse entities".
import { startFake } from './fake-upstream.mjs';

const ALLOWED = new Set(['b', 'strong', 'i', 'em', 'u', 'ins', 's', 'strike', 'del', 'a', 'code', 'pre', 'blockquote', 'tg-spoiler', 'span', 'tg-emoji']);

/** Returns null when Telegram would accept `html`, else the error description. */
export function checkHtml(html) {
  const stack = [];
  let text = '';
  let i = 0;
  while (i < html.length) {
    const c = html[i];
    if (c === '<') {
      const end = html.indexOf('>', i);
      if (end < 0) return "Bad Request: can't parse entities: unclosed start tag";
      const inner = html.slice(i + 1, end);
      if (inner.startsWith('/')) {
        const name = inner.slice(1).trim();
        if (stack.pop() !== name) return `Bad Request: can't parse entities: Unmatched end tag at byte offset ${i}, expected "</${stack.at(-1) ?? ''}>", found "</${name}>"`;
      } else {
        const name = inner.split(/\s/)[0];
        if (!ALLOWED.has(name)) return `Bad Request: can't parse entities: Unsupported start tag "${name}" at byte offset ${i}`;
        if (name === 'a' && !/^a href="[^"<>]*"$/.test(inner)) return `Bad Request: can't parse entities: bad a tag at byte offset ${i}`;
        stack.push(name);
      }
      i = end + 1;
    } else if (c === '&') {
      const m = /^&(amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);/.exec(html.slice(i));
      if (!m) return `Bad Request: can't parse entities: Character entity expected at byte offset ${i}`;
      text += 'x';
      i += m[0].length;
    } else {
      text += c;
      i += 1;
    }
  }
  if (stack.length) return `Bad Request: can't parse entities: Can't find end tag corresponding to start tag "${stack.at(-1)}"`;
  if (text.length > 4096) return 'Bad Request: message is too long';
  if (!text.trim()) return 'Bad Request: message text is empty';
  return null;
}

export async function startFakeTelegram(t) {
  return startFakeTelegramOn(await startFake(t, 'telegram'));
}

/** The fake Bot API's routes on an already started fake server. */
export function startFakeTelegramOn(fake) {
  const tg = {
    fake,
    url: fake.url,
    bots: new Map(), // token → {id, username, first_name}
    webhooks: new Map(), // token → {url, secret_token, allowed_updates}
    commands: new Map(),
    files: new Map(), // file_id → {path, bytes}
    sent: [], // {token, method, chat_id, text, parse_mode, caption, photoBytes}
    failSetWebhook: false,
    addBot(token, id, username) {
      this.bots.set(token, { id, is_bot: true, first_name: username, username });
    },
    /** `hideSize`: getFile leaves out `file_size`, as Telegram may. */
    addFile(fileId, path, bytes, { hideSize = false } = {}) {
      this.files.set(fileId, { path, bytes, hideSize });
    },
    messagesTo(chat) {
      return this.sent.filter((m) => String(m.chat_id) === String(chat));
    },
  };
  const ok = (result) => ({ json: { ok: true, result } });
  const bad = (code, description, extra = {}) => ({ status: code, json: { ok: false, error_code: code, description, ...extra } });

  function multipart(req) {
    const ct = req.headers['content-type'] ?? '';
    const boundary = /boundary=(.+)$/.exec(ct)?.[1];
    const fields = {};
    if (!boundary) return fields;
    const raw = req.raw.toString('latin1');
    for (const part of raw.split(`--${boundary}`)) {
      const m = /name="([^"]+)"(?:; filename="([^"]+)")?[\s\S]*?\r\n\r\n([\s\S]*)\r\n$/.exec(part);
      if (m) fields[m[1]] = m[2] ? { filename: m[2], bytes: Buffer.from(m[3], 'latin1') } : Buffer.from(m[3], 'latin1').toString('utf8');
    }
    return fields;
  }

  fake.on('POST', /^\/bot([^/]+)\/(\w+)$/, (req, m) => {
    const token = decodeURIComponent(m[1]);
    const method = m[2];
    const bot = tg.bots.get(token);
    if (!bot) return bad(401, 'Unauthorized');
    const p = method === 'sendPhoto' ? multipart(req) : req.json ?? {};
    switch (method) {
      case 'getMe': return ok(bot);
      case 'setWebhook':
        if (tg.failSetWebhook) return bad(400, 'Bad Request: bad webhook: HTTPS url must be provided for webhook');
        if (p.secret_token && !/^[A-Za-z0-9_-]{1,256}$/.test(p.secret_token)) return bad(400, 'Bad Request: secret token contains unallowed characters');
        tg.webhooks.set(token, { url: p.url, secret_token: p.secret_token, allowed_updates: p.allowed_updates });
        return ok(true);
      case 'deleteWebhook':
        tg.webhooks.delete(token);
        return ok(true);
      case 'setMyCommands':
        tg.commands.set(token, p.commands);
        return ok(true);
      case 'getFile': {
        const f = tg.files.get(p.file_id);
        if (!f) return bad(400, 'Bad Request: invalid file_id');
        return ok({ file_id: p.file_id, file_unique_id: `u${p.file_id}`, ...(f.hideSize ? {} : { file_size: f.bytes.length }), file_path: f.path });
      }
      case 'sendMessage': {
        if (p.parse_mode === 'HTML') {
          const problem = checkHtml(p.text ?? '');
          if (problem) return bad(400, problem);
        } else if (!p.text || p.text.length > 4096) {
          return bad(400, p.text ? 'Bad Request: message is too long' : 'Bad Request: message text is empty');
        }
        tg.sent.push({ token, method, chat_id: p.chat_id, text: p.text, parse_mode: p.parse_mode });
        return ok({ message_id: tg.sent.length, chat: { id: Number(p.chat_id) }, text: p.text });
      }
      case 'sendPhoto': {
        if (p.caption && p.parse_mode === 'HTML') {
          const problem = checkHtml(p.caption);
          if (problem) return bad(400, problem);
          if (p.caption.replace(/<[^>]+>/g, '').length > 1024) return bad(400, 'Bad Request: message caption is too long');
        }
        tg.sent.push({ token, method, chat_id: p.chat_id, caption: p.caption, parse_mode: p.parse_mode, photoBytes: p.photo?.bytes, filename: p.photo?.filename });
        return ok({ message_id: tg.sent.length });
      }
      default: return bad(404, 'Not Found: method not found');
    }
  });
  fake.on('GET', /^\/file\/bot([^/]+)\/(.+)$/, (req, m) => {
    if (!tg.bots.has(decodeURIComponent(m[1]))) return { status: 401, body: 'Unauthorized' };
    const f = [...tg.files.values()].find((x) => x.path === m[2]);
    return f ? { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: f.bytes } : { status: 404, body: 'Not Found' };
  });
  return tg;
}
