// Builds the worker: `worker-build --release` → build/index.js + build/index_bg.wasm, and the
// console's static assets (scripts/console.mjs → console/dist).
// With --if-needed (used by wrangler's [build] hook) it skips when the build is newer than
// every source file, so `wrangler dev`/`deploy` after `npm start`/`npm test` cost nothing.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { root, cargoBin, bin, run, log, exists, toolEnv } from './lib.mjs';
import { buildConsole } from './console.mjs';

/** `build/` is what deploys; `build-test/` carries the test-only fault switches (the
 * `fault-injection` feature) that the integration tests use. */
export const outDir = (test) => join(root, test ? 'build-test' : 'build');

function newestSource() {
  let newest = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, 'src'));
  for (const f of ['Cargo.toml', 'Cargo.lock', 'openapi.json', 'tests/fixtures/legacy-ciphertexts.json']) {
    if (exists(join(root, f))) newest = Math.max(newest, statSync(join(root, f)).mtimeMs);
  }
  return newest;
}

export function upToDate(test = false) {
  const wasm = join(outDir(test), 'index_bg.wasm');
  return exists(wasm) && exists(join(outDir(test), 'index.js')) && statSync(wasm).mtimeMs >= newestSource();
}

export function build({ ifNeeded = false, test = false } = {}) {
  // The console's static assets (esbuild, under a second): always rebuilt.
  buildConsole();
  if (ifNeeded && upToDate(test)) {
    log(`worker build${test ? ' (test)' : ''} is up to date`);
    return;
  }
  log(`building the worker${test ? ' with test fault switches' : ''} (worker-build --release)`);
  const t0 = Date.now();
  compile({ crateDir: root, outDir: outDir(test), features: test ? ['fault-injection'] : [] });
  log(`worker built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** The build recipe, for this crate and for the bench's floor worker (`bench/floor`, its own
 * crate and target dir): `worker-build --release`, then wasm-opt strips the name section. */
export function compile({ crateDir, outDir: out, features = [], targetDir }) {
  const base = exists(join(root, '.use-debian-rust')) ? toolEnv({ PATH: `/usr/bin:${toolEnv().PATH}` }) : toolEnv();
  const env = targetDir ? { ...base, CARGO_TARGET_DIR: targetDir } : base;
  const args = ['--release', '--out-dir', out, crateDir];
  if (features.length) args.push('--features', features.join(','));
  run(join(cargoBin, 'worker-build'), args, { env, cwd: crateDir });
  // One more -Oz pass (measured: -5 KiB gzip after worker-build's own; -O3 was 9 KiB larger,
  // --converge and -Os no smaller), and drop the function-name section (about 250 KB) that
  // wasm-bindgen keeps: Workers never needs it, and every byte is upload size. (Cargo's
  // `strip = true` would also remove the target_features section wasm-bindgen needs,
  // cloudflare/workers-rs#1014.) BENCH_KEEP_NAMES=1 keeps the names, for profiling.
  const wasm = join(out, 'index_bg.wasm');
  const strip = process.env.BENCH_KEEP_NAMES === '1' ? ['-g'] : ['--strip-debug', '--strip-producers'];
  run(bin('wasm-opt'), [wasm, '-Oz', ...strip, '-o', wasm], { env });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // The bench and the test harness build first; wrangler's [build] hook then has nothing to do.
  if (process.env.SKIP_WORKER_BUILD !== '1') build({ ifNeeded: process.argv.includes('--if-needed') });
}
