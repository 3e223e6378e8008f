// Builds the console (contract §15): console/src (TypeScript + Preact) bundled by esbuild into
// console/dist, which wrangler serves as Workers static assets ([assets] in wrangler.toml).
// File names carry a content hash, so they are cached for good; index.html and `_headers`
// (the CSP and security headers for every asset) are written next to them.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { root, log } from './lib.mjs';

export const consoleDir = join(root, 'console');
export const consoleDist = join(consoleDir, 'dist');

// Kept in step with src/console.rs (the pages the worker answers with index.html).
const CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'";

export function buildConsole() {
  // Loaded here, not at the top: `npm test` imports this file before its set-up has installed
  // the npm packages on a clean machine.
  const { buildSync } = createRequire(import.meta.url)('esbuild');
  const t0 = Date.now();
  rmSync(consoleDist, { recursive: true, force: true });
  mkdirSync(join(consoleDist, 'assets'), { recursive: true });
  const result = buildSync({
    entryPoints: [join(consoleDir, 'src', 'main.tsx')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: join(consoleDist, 'assets'),
    entryNames: '[name]-[hash]',
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs);
  const js = outputs.find((f) => f.endsWith('.js'));
  const css = outputs.find((f) => f.endsWith('.css'));
  const html = readFileSync(join(consoleDir, 'index.html'), 'utf8')
    .replace('%JS%', `/assets/${basename(js)}`)
    .replace('%CSS%', `/assets/${basename(css)}`);
  writeFileSync(join(consoleDist, 'index.html'), html);
  writeFileSync(join(consoleDist, '_headers'), [
    '/*',
    `  Content-Security-Policy: ${CSP}`,
    '  X-Content-Type-Options: nosniff',
    '  X-Frame-Options: DENY',
    '  Referrer-Policy: no-referrer',
    '  Cross-Origin-Opener-Policy: same-origin',
    '/',
    '  Cache-Control: no-cache',
    '/assets/*',
    '  Cache-Control: public, max-age=31536000, immutable',
    '',
  ].join('\n'));
  const sizes = [js, css, join(consoleDist, 'index.html')].map((f) => {
    const b = readFileSync(f.startsWith('/') ? f : join(root, f));
    return { raw: b.length, gzip: gzipSync(b, { level: 9 }).length };
  });
  const total = sizes.reduce((a, s) => ({ raw: a.raw + s.raw, gzip: a.gzip + s.gzip }), { raw: 0, gzip: 0 });
  log(`console built in ${Date.now() - t0} ms: ${(total.raw / 1024).toFixed(1)} KiB, ${(total.gzip / 1024).toFixed(1)} KiB gzip (JS + CSS + HTML)`);
  return total;
}

if (import.meta.url === `file://${process.argv[1]}`) buildConsole();
