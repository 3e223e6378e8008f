// Generates openapi.json (OpenAPI 3.1), which the worker embeds and serves at /openapi.json.
// Edit the operations here, run `npm run openapi`, commit both files. `npm test` runs this
// with --check and fails when openapi.json is stale; a Rust test fails when a routed path
// is missing from it.
import { readFileSync, writeFileSync } from 'node:fs';

const ref = (name) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
const err = (description) => json(ref('Error'), description);
const E = {
  400: err('Malformed JSON (`INVALID_JSON`) or invalid input (`VALIDATION_ERROR`, with `details`)'),
  401: err('Missing or invalid authentication (`UNAUTHORIZED`)'),
  403: err('Admin access required (`FORBIDDEN`)'),
  404: err('Not found (`NOT_FOUND`); another user\'s resource answers the same'),
  409: err('Conflict with existing state'),
  410: err('Gone (e.g. `CREDENTIALS_EXPIRED`)'),
  413: err('Body over the route\'s limit (`PAYLOAD_TOO_LARGE`)'),
  500: json(ref('InternalError'), 'Unexpected failure (`INTERNAL_ERROR`), with the request id'),
  502: err('Upstream provider failure (`UPSTREAM_ERROR`)'),
  503: err('Not configured (e.g. `ENCRYPTION_NOT_CONFIGURED`)'),
};
const errors = (...codes) => Object.fromEntries(codes.map((c) => [String(c), E[c]]));
const body = (schema, required = true) => ({ required, content: { 'application/json': { schema } } });
const str = (extra = {}) => ({ type: 'string', ...extra });
const time = { type: 'string', format: 'date-time' };
const obj = (properties, required = []) => ({ type: 'object', properties, required, additionalProperties: false });
const pathParam = (name, description) => ({ name, in: 'path', required: true, schema: str(), description });
const listParams = [
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 }, description: 'Page size' },
  { name: 'cursor', in: 'query', schema: str(), description: 'Opaque cursor from the previous page' },
];

const admin = (op) => ({ security: [{ bearer: [] }], ...op, responses: { ...op.responses, ...errors(401, 403, 500) } });
const user = (op) => ({ security: [{ bearer: [] }], ...op, responses: { ...op.responses, ...errors(401, 500) } });
const publicOp = (op) => ({ security: [], ...op });

const paths = {
  '/api/admin/users': {
    get: admin({
      tags: ['admin'], summary: 'List users (newest first)', parameters: listParams,
      responses: {
        200: json(obj({ users: { type: 'array', items: ref('AdminUser') }, cursor: str(), hasMore: { type: 'boolean' } }, ['users', 'hasMore'])),
        ...errors(400),
      },
    }),
  },
  '/health': {
    get: publicOp({
      tags: ['service'], summary: 'Liveness check',
      responses: { 200: json(obj({ status: { const: 'ok' }, timestamp: time }, ['status', 'timestamp'])) },
    }),
  },
  '/openapi.json': {
    get: publicOp({ tags: ['service'], summary: 'This document', responses: { 200: json({ type: 'object' }) } }),
  },
  '/api/me': {
    get: user({
      tags: ['account'], summary: 'The caller',
      responses: { 200: json(obj({ user: ref('User') }, ['user'])) },
    }),
  },
  '/api/api-tokens': {
    get: user({
      tags: ['account'], summary: 'List the caller\'s API tokens (newest first, revoked ones omitted)',
      parameters: listParams,
      responses: {
        200: json(obj({ tokens: { type: 'array', items: ref('ApiToken') }, cursor: str(), hasMore: { type: 'boolean' } }, ['tokens', 'hasMore'])),
        ...errors(400),
      },
    }),
    post: user({
      tags: ['account'], summary: 'Create an API token; its text is shown only in this answer',
      requestBody: body(obj({ name: str({ minLength: 1, maxLength: 100 }), expiresAt: { ...time, description: 'Must be in the future' } }, ['name'])),
      responses: {
        201: json(obj({ id: str({ format: 'uuid' }), name: str(), prefix: str(), token: str(), createdAt: time, expiresAt: time }, ['id', 'name', 'prefix', 'token', 'createdAt']), 'Created'),
        ...errors(400, 409, 413),
      },
    }),
  },
  '/api/api-tokens/{id}': {
    parameters: [pathParam('id', 'Token id')],
    delete: user({
      tags: ['account'], summary: 'Revoke an API token (effective immediately)',
      responses: { 200: json(ref('Success')), ...errors(404) },
    }),
  },
  '/api/me/credentials': {
    get: user({
      tags: ['credentials'], summary: 'Which credentials the caller has stored (never their values)',
      responses: { 200: json(obj({ credentials: { type: 'array', items: ref('CredentialMeta') } }, ['credentials'])), ...errors(503) },
    }),
  },
  '/api/me/credentials/{service}': {
    parameters: [{ ...pathParam('service', 'Service name'), schema: str({ pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$' }) }],
    put: user({
      tags: ['credentials'], summary: 'Store (or replace) a credential, encrypted at rest',
      requestBody: body(obj({
        credentials: { type: 'object', additionalProperties: str({ maxLength: 16384 }), minProperties: 1, maxProperties: 32 },
        scopes: { type: 'array', items: str({ minLength: 1, maxLength: 128 }), maxItems: 64 },
        expiresAt: time,
      }, ['credentials'])),
      responses: { 200: json(obj({ credential: ref('CredentialMeta') }, ['credential'])), ...errors(400, 413, 503) },
    }),
    delete: user({
      tags: ['credentials'], summary: 'Delete a stored credential',
      responses: { 200: json(ref('Success')), ...errors(400, 404, 503) },
    }),
  },
};

const doc = {
  openapi: '3.1.0',
  info: {
    title: 'Integrations service',
    version: JSON.parse(readFileSync(new URL('../package.json', import.meta.url))).version,
    description: 'Connects GitHub, Gmail, Google Calendar and Telegram to an AI-agent platform. ' +
      'Every error is `{error, code, details?}`; every response carries `X-Request-Id`. ' +
      'Request bodies are limited to 1 MiB unless a route says otherwise.',
  },
  servers: [{ url: 'http://127.0.0.1:8787', description: 'Local (npm start)' }],
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token (`itk_…`) or a login session token' } },
    schemas: {
      Error: obj({ error: str(), code: str({ pattern: '^[A-Z][A-Z0-9_]*$' }), details: {} }, ['error', 'code']),
      InternalError: obj({ error: { const: 'Internal server error' }, code: { const: 'INTERNAL_ERROR' }, requestId: str() }, ['error', 'code', 'requestId']),
      Success: obj({ success: { const: true } }, ['success']),
      User: obj({ id: str(), email: str({ format: 'email' }), name: { type: ['string', 'null'] }, role: { enum: ['member', 'admin'] } }, ['id', 'email', 'name', 'role']),
      AdminUser: obj({ id: str(), email: str({ format: 'email' }), name: { type: ['string', 'null'] }, role: { enum: ['member', 'admin'] }, createdAt: time }, ['id', 'email', 'name', 'role', 'createdAt']),
      ApiToken: obj({ id: str(), name: str(), prefix: str(), createdAt: time, lastUsedAt: time, expiresAt: time }, ['id', 'name', 'prefix', 'createdAt']),
      CredentialMeta: obj({ service: str(), scopes: { type: 'array', items: str() }, createdAt: time, expiresAt: time }, ['service', 'scopes', 'createdAt']),
    },
  },
  paths,
};

const text = JSON.stringify(doc, null, 2) + '\n';
const file = new URL('../openapi.json', import.meta.url);
if (process.argv.includes('--check')) {
  let current = '';
  try { current = readFileSync(file, 'utf8'); } catch {}
  if (current !== text) {
    console.error('openapi.json is out of date: run `npm run openapi` and commit it');
    process.exit(1);
  }
} else {
  writeFileSync(file, text);
  console.log(`wrote openapi.json (${Object.keys(paths).length} paths)`);
}
