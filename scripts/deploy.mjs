// `npm run deploy [-- --dry-run]`: build if needed, then `wrangler deploy`. A dry run works
// offline and prints the upload size (raw / gzip).
import { join } from 'node:path';
import { setup } from './setup.mjs';
import { build } from './build.mjs';
import { root, runAsync, toolEnv } from './lib.mjs';

setup();
build({ ifNeeded: true });
const args = process.argv.slice(2);
if (args.includes('--dry-run') && !args.some((a) => a.startsWith('--outdir'))) args.push('--outdir', join(root, 'dist'));
const code = await runAsync('node', [join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'deploy', ...args], { env: toolEnv() });
process.exit(code);
