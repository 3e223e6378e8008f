// `npm test`: set-up, lint, native unit tests, build, then the integration tests against the
// compiled worker in workerd. Fails on the first failing step.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setup } from './setup.mjs';
import { build } from './build.mjs';
import { root, run, runAsync, log } from './lib.mjs';

const t0 = Date.now();
const step = (name, fn) => {
  const s = Date.now();
  log(`── ${name}`);
  const r = fn();
  log(`   ${name}: ${((Date.now() - s) / 1000).toFixed(1)} s`);
  return r;
};

step('setup', () => setup({ forTests: true }));
step('openapi.json up to date', () => run('node', ['scripts/openapi.mjs', '--check']));
step('console type-check (tsc --noEmit)', () => run('node', [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'console')]));
step('cargo fmt --check', () => run('cargo', ['fmt', '--check']));
step('cargo clippy', () => run('cargo', ['clippy', '--all-targets', '--quiet', '--', '-D', 'warnings']));
step('native unit tests (cargo test)', () => run('cargo', ['test', '--lib', '--quiet']));
step('build the worker (test variant)', () => build({ ifNeeded: true, test: true }));

const dir = join(root, 'tests', 'integration');
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.mjs') && (only.length === 0 || only.some((o) => f.includes(o))))
  .sort()
  .map((f) => join(dir, f));
log(`── integration tests (${files.length} files, workerd via Miniflare)`);
const code = await runAsync('node', ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files]);
log(`npm test finished in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${code === 0 ? 'PASS' : 'FAIL'}`);
process.exit(code);
