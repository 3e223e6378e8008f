// `npm run user:create -- --email E [--name N] [--admin] [--remote] [--persist-to DIR]`
// Creates the user (or finds it by email) and a new API token in the local (or remote) D1.
// Prints exactly one JSON line on stdout: {"userId":"…","token":"…"}.
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { userStatements } from './users.mjs';
import { root, devState, toolEnv } from './lib.mjs';

const { values } = parseArgs({
  options: {
    email: { type: 'string' }, name: { type: 'string' }, admin: { type: 'boolean', default: false },
    remote: { type: 'boolean', default: false }, 'persist-to': { type: 'string' },
  },
});
const fail = (msg) => { process.stderr.write(`user:create: ${msg}\n`); process.exit(1); };
if (!values.email || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(values.email)) fail('--email <address> is required');

const wrangler = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const where = values.remote ? ['--remote'] : ['--local', '--persist-to', values['persist-to'] ?? devState];
const env = toolEnv({ CI: '1' });
function wr(args) {
  const r = spawnSync('node', [wrangler, ...args], { cwd: root, env, encoding: 'utf8' });
  if (r.status !== 0) fail(`wrangler ${args.slice(0, 3).join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}
// Local state is created on demand, so a fresh clone works before `npm start`.
if (!values.remote) wr(['d1', 'migrations', 'apply', 'DB', ...where]);

// `wrangler d1 execute --command` takes no bind parameters: inline them as SQL literals.
const literal = (v) => (v === null || v === undefined ? 'NULL' : `'${String(v).replaceAll("'", "''")}'`);
const { token, statements } = userStatements({ email: values.email.toLowerCase(), name: values.name ?? null, admin: values.admin });
const sql = statements
  .map(([text, params]) => text.replace(/\?(\d+)/g, (_, i) => literal(params[Number(i) - 1])))
  .join(';\n');
const out = wr(['d1', 'execute', 'DB', ...where, '--json', '--command', sql]);
const results = JSON.parse(out.slice(out.indexOf('[')));
const userId = results.at(-1)?.results?.[0]?.id;
if (!userId) fail('the user could not be created');
process.stdout.write(JSON.stringify({ userId, token }) + '\n');
