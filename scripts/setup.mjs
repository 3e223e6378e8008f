// Installs whatever the build needs and is missing; safe to re-run. Cached tools are reused,
// a version mismatch is repaired. Steps: npm packages, the wasm32 target (with the Debian
// fallback of notes/toolchain.md when rustup cannot download), worker-build, wasm-bindgen CLI.
import { readFileSync, readdirSync, mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { root, cargoBin, run, tryRun, log, lockedVersion, exists } from './lib.mjs';

const WORKER_BUILD_VERSION = '0.8.7';

function npmPackages() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const stale = Object.entries(pkg.devDependencies).filter(([name, version]) => {
    const p = join(root, 'node_modules', name, 'package.json');
    return !exists(p) || JSON.parse(readFileSync(p, 'utf8')).version !== version;
  });
  if (stale.length === 0) return;
  log(`npm packages missing or stale (${stale.map(([n]) => n).join(', ')}): npm ci`);
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

function wasmTarget() {
  const installed = tryRun('rustup', ['target', 'list', '--installed']);
  if (installed.status === 0 && installed.stdout.split('\n').includes('wasm32-unknown-unknown')) return;
  log('adding the wasm32-unknown-unknown target');
  if (tryRun('rustup', ['target', 'add', 'wasm32-unknown-unknown']).status === 0) return;
  log('rustup could not add the target; building std for wasm32 from Debian\'s rust-web-src (toolchain notes)');
  debianFallback();
}

// notes/toolchain.md: Debian's rustc-web ships full std sources; build std for wasm32 once
// and install the rlibs into that compiler's target libdir.
function debianFallback() {
  const sudo = process.getuid && process.getuid() === 0 ? [] : ['sudo'];
  const apt = (args) => run(sudo.length ? 'sudo' : 'apt-get', sudo.length ? ['apt-get', ...args] : args);
  apt(['update']);
  apt(['install', '-y', 'rustc-web', 'cargo-web', 'rust-web-src', 'lld-22']);
  const env = { ...process.env, PATH: `/usr/bin:${process.env.PATH}`, RUSTC_BOOTSTRAP: '1', RUSTFLAGS: '-Cembed-bitcode=yes' };
  const dir = join(tmpdir(), 'wasm-std-build');
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'Cargo.toml'), '[package]\nname = "stdbuild"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n');
  writeFileSync(join(dir, 'src', 'lib.rs'), '#![no_std]\n');
  const r = tryRun('/usr/bin/cargo', ['build', '--release', '--target', 'wasm32-unknown-unknown', '-Zbuild-std=std,panic_abort,panic_unwind,proc_macro', '--manifest-path', join(dir, 'Cargo.toml')], { env });
  if (r.status !== 0) throw new Error(`building std for wasm32 failed:\n${r.stderr}`);
  const libdir = tryRun('/usr/bin/rustc', ['--print', 'target-libdir', '--target', 'wasm32-unknown-unknown'], { env }).stdout.trim();
  mkdirSync(libdir, { recursive: true });
  const deps = join(dir, 'target', 'wasm32-unknown-unknown', 'release', 'deps');
  for (const f of readdirSync(deps).filter((f) => f.endsWith('.rlib') && !f.startsWith('libstdbuild'))) {
    copyFileSync(join(deps, f), join(libdir, f));
  }
  writeFileSync(join(root, '.use-debian-rust'), 'build with /usr/bin/cargo (see scripts/setup.mjs)\n');
}

function cargoInstall(crate, version, binary, versionPattern) {
  const path = join(cargoBin, binary);
  const current = exists(path) ? tryRun(path, ['--version']).stdout.trim() : '';
  if (versionPattern.test(current)) return;
  log(`installing ${crate} ${version}${current ? ` (found "${current}")` : ''}`);
  // --locked first; some locked transitive versions can be missing from the registry
  // mirror (seen: webpki-roots 1.0.11 for wasm-bindgen-cli), so fall back to resolving.
  if (tryRun('cargo', ['install', crate, '--version', version, '--locked', '--force']).status === 0) return;
  run('cargo', ['install', crate, '--version', version, '--force']);
}

/** The Schemathesis version the reliability suite runs (from PyPI, into `.venv-schemathesis`). */
export const SCHEMATHESIS_VERSION = '4.32.5';
export const schemathesisBin = join(root, '.venv-schemathesis', 'bin', 'schemathesis');

/** Test-only tools: Schemathesis in a virtualenv of its own (reused when its version matches). */
function testTools() {
  const have = exists(schemathesisBin) && tryRun(schemathesisBin, ['--version']).stdout.includes(SCHEMATHESIS_VERSION);
  if (have) return;
  log(`installing schemathesis ${SCHEMATHESIS_VERSION} into .venv-schemathesis (PyPI)`);
  const venv = join(root, '.venv-schemathesis');
  run('python3', ['-m', 'venv', venv]);
  run(join(venv, 'bin', 'pip'), ['install', '-q', '--disable-pip-version-check', `schemathesis==${SCHEMATHESIS_VERSION}`]);
}

/** The browser the console's tests drive (playwright-core; its own browser download cannot
 * work here): Debian's `chromium`, installed with apt when missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export function chromium() {
  if (exists(CHROMIUM)) return;
  log(`installing Debian's chromium for the console's browser tests (apt-get; ${CHROMIUM} is missing)`);
  const sudo = process.getuid && process.getuid() === 0 ? [] : ['sudo'];
  const apt = (args) => run(sudo.length ? 'sudo' : 'apt-get', sudo.length ? ['apt-get', ...args] : args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  apt(['update']);
  apt(['install', '-y', '--no-install-recommends', 'chromium']);
}

/** `forTests`: also what only the test suite needs (`npm test`, not `npm start`). */
export function setup({ forTests = false } = {}) {
  npmPackages();
  wasmTarget();
  cargoInstall('worker-build', WORKER_BUILD_VERSION, 'worker-build', new RegExp(`^(worker-build )?${WORKER_BUILD_VERSION.replaceAll('.', '\\.')}$`));
  const wb = lockedVersion('wasm-bindgen');
  cargoInstall('wasm-bindgen-cli', wb, 'wasm-bindgen', new RegExp(`^wasm-bindgen ${wb.replaceAll('.', '\\.')}$`));
  if (forTests) {
    testTools();
    chromium();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  setup();
  log('setup complete');
}
