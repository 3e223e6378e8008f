// `npm start`: install what is missing, build, prepare local state, serve on 127.0.0.1:8787.
import { existsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setup } from './setup.mjs';
import { build } from './build.mjs';
import { root, run, runAsync, log, devState, toolEnv } from './lib.mjs';

setup();
build({ ifNeeded: true });

const devVars = join(root, '.dev.vars');
if (!existsSync(devVars)) {
  // A random development key; production sets its own with `wrangler secret put`.
  writeFileSync(devVars, `ENCRYPTION_KEY="${randomBytes(32).toString('base64url')}"\n`, { mode: 0o600 });
  log('created .dev.vars with a random development ENCRYPTION_KEY');
}

const wrangler = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
log('applying D1 migrations to the local state');
run('node', [wrangler, 'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', devState], { env: toolEnv({ CI: '1' }) });

const port = process.env.PORT || '8787';
log(`serving on http://127.0.0.1:${port}  (create a user: npm run user:create -- --email you@example.com)`);
const code = await runAsync('node', [wrangler, 'dev', '--ip', '127.0.0.1', '--port', port, '--persist-to', devState, ...process.argv.slice(2)]);
process.exit(code);
