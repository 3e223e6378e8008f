// Integration harness: runs the compiled worker (build/) in workerd through Miniflare with a
// fresh state directory, D1 migrated by `wrangler d1 migrations apply` exactly as production
// is, real SQLite-backed Durable Objects, and configuration pointing every upstream base URL
// at local fake servers. Everything it starts is stopped by `stop()`, also on failure.
import { mkdtempSync, rmSync, mkdirSync, readdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Miniflare } from 'miniflare';
import { root, run, toolEnv } from '../../scripts/lib.mjs';
import { userStatements } from '../../scripts/users.mjs';

export const DATABASE_ID = '00000000-0000-4000-8000-000000000000';
export const COMPATIBILITY_DATE = '2026-04-20';
// 32 random bytes, base64url: a key of the strength the service requires (256 bits).
export const TEST_KEY = 'tZ2nV8xq1Jc0m5pLw7Rk9Yb3Hs6Df4Ga2Qe8Tu1Io0A';

const stateRoot = join(root, '.test-state');

/** Every secret a test configures, so output scans can look for them. */
export const knownSecrets = new Set([TEST_KEY]);

export class Service {
  /** `buildDir`: the test variant (fault switches compiled in, off unless configured) by
   * default; benchmarks run the deployable `build`. */
  /** `migrateUpTo`: apply only the migrations up to that file name (a database of an older
   * release); `upgrade()` then applies the rest, as the next deploy would. */
  constructor({ vars = {}, upstreams = {}, buildDir = 'build-test', migrateUpTo, dataPlane = true, console = false } = {}) {
    this.vars = vars;
    // Serve the console's static assets (as wrangler.toml's [assets]).
    this.console = console;
    this.migrateUpTo = migrateUpTo;
    // A build from before the data plane has no IntegrationData class (bench baselines).
    this.dataPlane = dataPlane;
    this.buildDir = buildDir;
    this.upstreams = upstreams;
    this.logs = [];
  }

  bindings(overrides = {}) {
    const up = this.upstreams;
    const base = {
      ENCRYPTION_KEY: TEST_KEY,
      FRONTEND_URL: 'https://app.example.com',
      GITHUB_API_URL: up.github ?? 'http://127.0.0.1:9/github',
      GITHUB_WEB_URL: up.githubWeb ?? 'http://127.0.0.1:9/github-web',
      TELEGRAM_API_URL: up.telegram ?? 'http://127.0.0.1:9/telegram',
      GOOGLE_ACCOUNTS_URL: up.googleAccounts ?? 'http://127.0.0.1:9/accounts',
      GOOGLE_OAUTH_TOKEN_URL: up.googleToken ?? 'http://127.0.0.1:9/token',
      GOOGLE_OAUTH_REVOKE_URL: up.googleRevoke ?? 'http://127.0.0.1:9/revoke',
      GMAIL_API_URL: up.gmail ?? 'http://127.0.0.1:9/gmail',
      GOOGLE_CALENDAR_API_URL: up.calendar ?? 'http://127.0.0.1:9/calendar',
      SLACK_API_URL: up.slack ?? 'http://127.0.0.1:9/slack',
      SLACK_OAUTH_URL: up.slackOauth ?? 'http://127.0.0.1:9/slack-oauth',
      // Google's OIDC keys for Pub/Sub push: never the real ones in tests.
      GOOGLE_CERTS_URL: up.googleCerts ?? 'http://127.0.0.1:9/certs',
      // Queue retries back off from 1 s in tests (10 s in production).
      JOB_RETRY_BASE_SECONDS: '1',
      ...this.vars,
      ...overrides,
    };
    for (const [k, v] of Object.entries(base)) {
      if (/KEY|SECRET|TOKEN$/.test(k) && typeof v === 'string' && v.length >= 8) knownSecrets.add(v);
    }
    // Miniflare bindings must be strings; `undefined` removes a variable.
    return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined));
  }

  options(bindings) {
    return {
      host: '127.0.0.1',
      port: 0,
      modules: true,
      scriptPath: resolve(root, this.buildDir, 'index.js'),
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
      compatibilityDate: COMPATIBILITY_DATE,
      // The console's static assets, as wrangler.toml's [assets] (with their `_headers`), for the
      // suites that ask for them: Miniflare's asset router in front of the worker resets a
      // kept-alive connection after an answer that left the request body unread (a 401 to a
      // POST), which would fail the next request of a suite on that connection.
      ...(this.console ? { assets: { directory: join(root, 'console', 'dist'), binding: 'ASSETS', routerConfig: { has_user_worker: true } } } : {}),
      d1Databases: { DB: DATABASE_ID },
      d1Persist: join(this.dir, 'v3', 'd1'),
      durableObjects: {
        API_KEYS: { className: 'ApiKeys', useSQLite: true },
        SESSIONS: { className: 'SessionAgent', useSQLite: true },
        ...(this.dataPlane ? { INTEGRATION_DATA: { className: 'IntegrationData', useSQLite: true } } : {}),
      },
      durableObjectsPersist: join(this.dir, 'v3', 'do'),
      // As wrangler.toml declares them; retries and timeouts are shortened for tests.
      queueProducers: { JOBS: { queueName: 'integrations-jobs' } },
      // As wrangler.toml; a test may lower one with TEST_LIMIT_<binding>.
      ratelimits: Object.fromEntries([['AUTH_FAILURE_LIMITER', 20], ['SIGNIN_LIMITER', 30], ['TELEGRAM_REFUSAL_LIMITER', 3]]
        .map(([name, limit]) => [name, { simple: { limit: Number(bindings[`TEST_LIMIT_${name}`] ?? limit), period: Number(bindings.TEST_LIMIT_PERIOD ?? 60) } }])),
      queueConsumers: {
        'integrations-jobs': { maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: Number(bindings.TEST_MAX_RETRIES ?? 3), deadLetterQueue: 'integrations-jobs-dlq' },
        'integrations-jobs-dlq': { maxBatchSize: 10, maxBatchTimeout: 0 },
      },
      bindings,
      handleRuntimeStdio: (stdout, stderr) => {
        for (const s of [stdout, stderr]) s.on('data', (chunk) => this.logs.push(String(chunk)));
      },
    };
  }

  /** Production path: wrangler applies migrations/ to the (local) D1 (with `upTo`, only the
   * files up to that name, through a copy of the configuration pointing at them). */
  migrate(upTo) {
    const args = ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', this.dir];
    if (upTo) {
      const dir = join(this.dir, 'migrations-old');
      mkdirSync(dir, { recursive: true });
      for (const f of readdirSync(join(root, 'migrations')).filter((f) => f.endsWith('.sql') && f <= upTo)) {
        copyFileSync(join(root, 'migrations', f), join(dir, f));
      }
      const config = readFileSync(join(root, 'wrangler.toml'), 'utf8')
        .replace(/^migrations_dir = .*$/m, `migrations_dir = ${JSON.stringify(dir)}`)
        .replace(/^main = .*$/m, `main = ${JSON.stringify(join(root, 'build', 'index.js'))}`)
        .replace(/^directory = .*$/m, `directory = ${JSON.stringify(join(root, 'console', 'dist'))}`);
      const path = join(this.dir, 'wrangler.old.toml');
      writeFileSync(path, config);
      args.push('-c', path);
    }
    run('node', [join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), ...args], { quiet: true, env: toolEnv({ CI: '1' }), cwd: root });
  }

  async start() {
    mkdirSync(stateRoot, { recursive: true });
    this.dir = mkdtempSync(join(stateRoot, 'run-'));
    this.migrate(this.migrateUpTo);
    this.mf = new Miniflare(this.options(this.bindings()));
    this.url = (await this.mf.ready).toString().replace(/\/$/, '');
    return this;
  }

  /** The next release: the worker stops, the remaining migrations are applied, it starts again
   * on the same state. */
  async upgrade() {
    await this.mf.dispose();
    this.migrate();
    this.mf = new Miniflare(this.options(this.bindings()));
    this.url = (await this.mf.ready).toString().replace(/\/$/, '');
  }

  /** An integration's `IntegrationData` object, spoken to over its internal protocol. */
  async integrationData(integrationId) {
    const ns = await this.mf.getDurableObjectNamespace('INTEGRATION_DATA');
    const stub = ns.get(ns.idFromName(integrationId));
    return async (op, body = {}) => {
      const r = await stub.fetch(`https://do.internal/${op}`, { method: 'POST', body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
  }

  /** Restarts the worker with changed variables (state is kept): e.g. a key rotation. */
  async reconfigure(overrides) {
    await this.mf.setOptions(this.options(this.bindings(overrides)));
    this.url = (await this.mf.ready).toString().replace(/\/$/, '');
  }

  async stop() {
    try {
      await this.mf?.dispose();
    } finally {
      if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** Direct D1 access for arranging and inspecting state. */
  db() {
    return this.mf.getD1Database('DB');
  }

  /** The `API_KEYS` object of a user, spoken to over its internal protocol. */
  async apiKeys(userId) {
    const ns = await this.mf.getDurableObjectNamespace('API_KEYS');
    const stub = ns.get(ns.idFromName(userId));
    return async (op, body) => {
      const r = await stub.fetch(`https://api-keys.internal/${op}`, { method: 'POST', body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
  }

  /** Creates (or finds) a user and a fresh API token, as `npm run user:create` does. */
  async createUser({ email = `u${Math.random().toString(36).slice(2, 10)}@example.com`, name = 'Test User', admin = false } = {}) {
    const { token, statements } = userStatements({ email, name, admin, tokenName: 'test' });
    const db = await this.db();
    const results = await db.batch(statements.map(([sql, params]) => db.prepare(sql).bind(...params)));
    const userId = results[2].results[0].id;
    knownSecrets.add(token);
    return { userId, token, email };
  }

  /** Calls the service over HTTP. Returns {status, headers, body (parsed JSON or text), text}. */
  async request(method, path, { token, body, headers = {}, raw } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload = raw;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.url + path, { method, headers: h, body: payload, redirect: 'manual' });
    const text = await res.text();
    this.logs.push(text); // responses are scanned for secrets too
    let parsed = text;
    try { parsed = text ? JSON.parse(text) : null; } catch {}
    return { status: res.status, headers: res.headers, body: parsed, text };
  }

  /** A secret shown once by design (e.g. a new API token in its create response), appearing
   * `times` times in that one response. */
  shownOnce(secret, times = 1) {
    knownSecrets.add(secret);
    (this.once ??= new Map()).set(secret, times);
  }

  /** Secrets that appeared in a response body or in workerd's output (beyond their one showing). */
  leakedSecrets() {
    const all = this.logs.join('\n');
    return [...knownSecrets].filter((s) => all.split(s).length - 1 > (this.once?.get(s) ?? 0));
  }
}

/** Starts a service for one test file; registers teardown with node:test. */
export async function startService(t, options) {
  const svc = new Service(options);
  t.after(() => svc.stop());
  await svc.start();
  return svc;
}
