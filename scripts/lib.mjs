// Shared helpers for the project scripts: running commands, tool paths, state locations.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const cargoBin = join(process.env.CARGO_HOME || join(homedir(), '.cargo'), 'bin');
export const bin = (name) => join(root, 'node_modules', '.bin', name);
/** Local state used by `npm start` and `npm run user:create` (wrangler's layout). */
export const devState = join(root, '.wrangler', 'state');

/** Environment for every wrangler and worker-build invocation: no telemetry, local tools. */
export function toolEnv(extra = {}) {
  return {
    ...process.env,
    PATH: `${cargoBin}:${join(root, 'node_modules', '.bin')}:${process.env.PATH}`,
    WRANGLER_SEND_METRICS: 'false',
    WASM_BINDGEN_BIN: join(cargoBin, 'wasm-bindgen'),
    WASM_OPT_BIN: bin('wasm-opt'),
    ESBUILD_BIN: bin('esbuild'),
    ...extra,
  };
}

export function log(msg) {
  process.stderr.write(`\x1b[36m[${new Date().toISOString().slice(11, 19)}]\x1b[0m ${msg}\n`);
}

/** Runs a command with inherited stdio; throws on a non-zero exit. */
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? root, stdio: opts.quiet ? 'pipe' : ['ignore', 'inherit', 'inherit'], env: opts.env ?? toolEnv(), encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    if (opts.quiet) process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  }
  return r.stdout ?? '';
}

/** Runs a command, returning {status, stdout, stderr} without throwing. */
export function tryRun(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', env: opts.env ?? toolEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.error ? -1 : r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Runs a command asynchronously with inherited output; resolves with its exit code. */
export function runAsync(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env: opts.env ?? toolEnv() });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/** The version of a crate pinned in Cargo.lock. */
export function lockedVersion(crate) {
  const lock = readFileSync(join(root, 'Cargo.lock'), 'utf8');
  const m = lock.match(new RegExp(`name = "${crate}"\\nversion = "([^"]+)"`));
  if (!m) throw new Error(`${crate} not found in Cargo.lock`);
  return m[1];
}

export const exists = (p) => existsSync(p);
