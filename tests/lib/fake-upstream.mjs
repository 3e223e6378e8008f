// A fake third-party API on 127.0.0.1: route handlers speaking the real API's paths and
// shapes (added per provider by later suites), a log of every request received, and fault
// injection on demand: status codes with headers (429 + Retry-After), delays past a client
// timeout, malformed bodies, or a dropped connection.
import { createServer } from 'node:http';

export class FakeUpstream {
  constructor(name = 'upstream') {
    this.name = name;
    this.routes = [];
    this.faults = [];
    this.requests = [];
  }

  /** Registers `handler(req) → {status?, headers?, json?, body?}` for a method and path regex/string. */
  on(method, path, handler) {
    this.routes.push({ method, path, handler });
    return this;
  }

  /**
   * Injects a fault for the next `times` requests matching `path` (string prefix or RegExp):
   * {status, headers, json, body} answers that instead; {delayMs} waits first;
   * {malformed: true} sends a truncated JSON body; {drop: true} destroys the socket.
   */
  fault(path, fault, times = 1) {
    this.faults.push({ path, fault, times });
    return this;
  }

  reset() {
    this.faults = [];
    this.requests = [];
  }

  async start() {
    this.server = createServer((req, res) => this.#handle(req, res));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  stop() {
    this.server?.closeAllConnections?.();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  async #handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url, this.url);
    let json;
    try { json = raw.length ? JSON.parse(raw) : undefined; } catch {}
    // Form posts (OAuth token endpoints) are read as well.
    const form = /x-www-form-urlencoded/.test(req.headers['content-type'] ?? '') ? Object.fromEntries(new URLSearchParams(raw.toString())) : undefined;
    const record = { method: req.method, path: url.pathname, query: url.searchParams, headers: req.headers, raw, json, form };
    this.requests.push(record);

    const match = (p) => (p instanceof RegExp ? p.test(url.pathname) : url.pathname.startsWith(p));
    const fi = this.faults.findIndex((f) => f.times > 0 && match(f.path));
    if (fi >= 0) {
      const { fault } = this.faults[fi];
      if (--this.faults[fi].times === 0) this.faults.splice(fi, 1);
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.drop) return req.socket.destroy();
      if (fault.malformed) {
        res.writeHead(fault.status ?? 200, { 'content-type': 'application/json' });
        return res.end('{"truncated": ');
      }
      if (fault.status) return this.#send(res, fault);
    }
    this.#send(res, await this.dispatch(record));
  }

  /** Answers a request record `{method, path, query, headers, raw, json}` from the routes
   * (batch endpoints use it for their inner requests). */
  async dispatch(record) {
    const route = this.routes.find((r) => r.method === record.method && (r.path instanceof RegExp ? r.path.test(record.path) : r.path === record.path));
    if (!route) return { status: 404, json: { message: 'Not Found', error: { code: 404, message: 'Not Found' } } };
    try {
      return await route.handler(record, record.path.match(route.path instanceof RegExp ? route.path : /$^/));
    } catch (e) {
      return { status: 500, json: { message: `fake ${this.name} failed: ${e.message}` } };
    }
  }

  #send(res, { status = 200, headers = {}, json, body } = {}) {
    if (json !== undefined) {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(json));
    } else {
      res.writeHead(status, headers);
      res.end(body ?? '');
    }
  }
}

/** Starts a fake for one test file; stopped when the file's tests end. */
export async function startFake(t, name) {
  const fake = await new FakeUpstream(name).start();
  t.after(() => fake.stop());
  return fake;
}
