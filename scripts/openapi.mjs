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

const idParam = [pathParam('id', 'Session id')];
const sessionRead = (summary, schema) => ({
  parameters: idParam,
  get: user({ tags: ['sessions'], summary, responses: { 200: json(schema), ...errors(404) } }),
});
const queueMode = { enum: ['followup', 'collect', 'steer'] };
const channelType = { enum: ['web', 'api', 'telegram', 'slack', 'github'] };
const attachmentIn = {
  oneOf: [
    obj({ type: { const: 'file' }, mime: str(), url: str({ description: 'data:<mime>;base64,<data>' }), filename: str() }, ['type', 'mime', 'url']),
    obj({ type: { enum: ['file', 'url'] }, name: str(), data: str({ description: 'base64, or a data: URL' }), mimeType: str() }, ['type', 'data']),
  ],
  description: 'image/* or audio/* only; at most 8 per prompt, 12,000,000 characters each, 25,000,000 in total',
};

const paths = {
  '/api/sessions': {
    post: user({
      tags: ['sessions'], summary: 'Create a session (and its web channel binding)',
      requestBody: body(obj({
        workspace: str({ minLength: 1, maxLength: 100 }), title: str({ maxLength: 200 }),
        repoUrl: str({ description: 'https://host/owner/repo(.git), git@host:owner/repo.git or owner/repo' }),
        branch: str(), ref: str(), parentSessionId: str(), sourceType: { enum: ['pr', 'issue', 'branch', 'manual'] },
        sourcePrNumber: { type: 'integer', minimum: 1 }, sourceIssueNumber: { type: 'integer', minimum: 1 },
        sourceRepoFullName: str({ description: 'owner/repo; derived from repoUrl when absent' }),
      }, ['workspace'])),
      responses: { 201: json(obj({ session: ref('Session') }, ['session']), 'Created'), ...errors(400, 413) },
    }),
    get: user({
      tags: ['sessions'], summary: 'List the caller\'s sessions (newest first)', parameters: listParams,
      responses: { 200: json(obj({ sessions: { type: 'array', items: ref('Session') }, cursor: str(), hasMore: { type: 'boolean' } }, ['sessions', 'hasMore'])), ...errors(400) },
    }),
  },
  '/api/sessions/{id}': sessionRead('A session with its git state', obj({ session: ref('Session') }, ['session'])),
  '/api/sessions/{id}/git-state': sessionRead('A session\'s git state', obj({ gitState: { oneOf: [ref('GitState'), { type: 'null' }] } }, ['gitState'])),
  '/api/sessions/{id}/children': sessionRead('Child sessions', obj({ sessions: { type: 'array', items: ref('Session') } }, ['sessions'])),
  '/api/sessions/{id}/messages': sessionRead('Messages the session received (oldest first)', obj({ messages: { type: 'array', items: ref('Message') } }, ['messages'])),
  '/api/sessions/{id}/queue': sessionRead('The prompt queue (in queue order, finished ones last)', obj({ prompts: { type: 'array', items: ref('QueuedPrompt') } }, ['prompts'])),
  '/api/sessions/{id}/events': sessionRead('Notifications and queue events (oldest first)', obj({ events: { type: 'array', items: obj({ id: str(), type: str(), data: {}, createdAt: time }) } }, ['events'])),
  '/api/sessions/{id}/queue/claim': {
    parameters: idParam,
    post: user({
      tags: ['runner'], summary: 'Take the next prompt (with attachment data) and mark it processing',
      responses: {
        200: json(obj({ prompt: ref('QueuedPrompt') }, ['prompt'])),
        204: { description: 'Nothing is queued' },
        409: err('A prompt is already being processed (`PROMPT_IN_PROGRESS`, details.promptId)'),
        ...errors(404),
      },
    }),
  },
  '/api/sessions/{id}/queue/{promptId}/complete': {
    parameters: [...idParam, pathParam('promptId', 'Prompt id')],
    post: user({
      tags: ['runner'], summary: 'Report the outcome of a claimed prompt (the result becomes the assistant\'s message)',
      requestBody: body(obj({ result: str({ maxLength: 1000000 }), error: str({ maxLength: 2000 }) }), false),
      responses: {
        200: json(ref('Success')),
        409: err('`PROMPT_ABORTED` (steered, cleared or stopped), `PROMPT_NOT_CLAIMED` or `PROMPT_ALREADY_COMPLETED`'),
        ...errors(400, 404, 413),
      },
    }),
  },
  '/api/sessions/{id}/queue/clear': {
    parameters: idParam,
    post: user({ tags: ['sessions'], summary: 'Abort every queued prompt and collect buffer', responses: { 200: json(obj({ success: { const: true }, cleared: { type: 'integer' }, interrupted: { type: 'integer' } })), ...errors(404) } }),
  },
  '/api/sessions/{id}/stop': {
    parameters: idParam,
    post: user({ tags: ['sessions'], summary: 'Interrupt the prompt in progress and clear the queue (the session stays)', responses: { 200: json(obj({ success: { const: true }, cleared: { type: 'integer' }, interrupted: { type: 'integer' } })), ...errors(404) } }),
  },
  '/api/me/orchestrator': {
    post: user({
      tags: ['sessions'], summary: 'Create or return the caller\'s orchestrator session',
      responses: { 200: json(obj({ session: ref('Session') }, ['session']), 'Existing'), 201: json(obj({ session: ref('Session') }, ['session']), 'Created') },
    }),
  },
  '/api/channels/bindings': {
    get: user({
      tags: ['channels'], summary: 'The caller\'s channel bindings', parameters: listParams,
      responses: { 200: json(obj({ bindings: { type: 'array', items: ref('Binding') }, cursor: str(), hasMore: { type: 'boolean' } }, ['bindings', 'hasMore'])), ...errors(400) },
    }),
    post: user({
      tags: ['channels'], summary: 'Bind a channel to one of the caller\'s sessions (scope key computed by the server)',
      requestBody: body(obj({
        sessionId: str(), channelType, channelId: str({ maxLength: 500, description: 'telegram: chat id; slack: team:channel:thread; github: owner/repo:pr:N' }),
        queueMode, collectDebounceMs: { type: 'integer', minimum: 0, maximum: 600000 },
      }, ['sessionId', 'channelType', 'channelId'])),
      responses: { 201: json(obj({ binding: ref('Binding') }, ['binding']), 'Created'), ...errors(400, 404, 409) },
    }),
  },
  '/api/channels/bindings/{id}': {
    parameters: [pathParam('id', 'Binding id')],
    patch: user({
      tags: ['channels'], summary: 'Change a binding\'s queue mode, debounce or session',
      requestBody: body(obj({ queueMode, collectDebounceMs: { type: 'integer', minimum: 0, maximum: 600000 }, sessionId: str() })),
      responses: { 200: json(obj({ binding: ref('Binding') }, ['binding'])), ...errors(400, 404, 409) },
    }),
    delete: user({ tags: ['channels'], summary: 'Remove a binding', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
  '/api/prompt': {
    post: user({
      tags: ['channels'],
      summary: 'Send a prompt: to the session the caller\'s binding names, else to the caller\'s orchestrator. Body limit 32 MiB.',
      requestBody: body(obj({
        content: str({ maxLength: 100000 }), channelType, channelId: str({ maxLength: 500 }), scopeKey: str({ maxLength: 1000 }),
        queueMode, attachments: { type: 'array', maxItems: 8, items: attachmentIn },
      })),
      responses: {
        200: json(obj({
          routed: { type: 'boolean' }, sessionId: { type: ['string', 'null'] }, scopeKey: { type: ['string', 'null'] },
          queueMode, promptId: { type: ['string', 'null'] }, messageId: str(), status: { enum: ['queued', 'buffered'] },
          orchestratorFallback: { type: 'boolean' },
          reason: str({ description: 'when not routed: orchestrator_not_configured, orchestrator_unavailable:<status>, orchestrator_dispatch_failed:<status>' }),
        }, ['routed', 'sessionId', 'scopeKey'])),
        ...errors(400, 413, 502),
      },
    }),
  },
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
      Session: obj({
        id: str(), userId: str(), workspace: str(), title: { type: ['string', 'null'] }, status: str(),
        isOrchestrator: { type: 'boolean' }, purpose: { enum: ['interactive', 'orchestrator', 'workflow'] },
        parentSessionId: { type: ['string', 'null'] }, createdAt: time, lastActiveAt: time,
        gitState: { oneOf: [ref('GitState'), { type: 'null' }] },
      }, ['id', 'userId', 'workspace', 'status', 'isOrchestrator', 'purpose', 'createdAt']),
      GitState: { type: 'object', properties: {
        sourceType: {}, sourcePrNumber: {}, sourceIssueNumber: {}, sourceRepoFullName: {}, sourceRepoUrl: {}, branch: {},
        baseBranch: {}, ref: {}, commitCount: { type: 'integer' }, prNumber: {}, prTitle: {}, prState: {}, prUrl: {},
        prCreatedAt: {}, prMergedAt: {}, agentAuthored: { type: 'boolean' }, updatedAt: time,
      } },
      Message: { type: 'object', properties: {
        id: str(), role: { enum: ['user', 'assistant'] }, content: str(), authorId: str(), authorName: str(), authorEmail: str(),
        channelType: str(), channelId: str(), createdAt: time,
        attachments: { type: 'array', items: obj({ mime: str(), filename: str(), size: { type: 'integer' } }, ['mime', 'size']) },
      }, required: ['id', 'role', 'content', 'attachments', 'createdAt'] },
      QueuedPrompt: { type: 'object', properties: {
        id: str(), content: str(), status: { enum: ['queued', 'processing', 'completed', 'aborted'] }, queueMode,
        channelType: { type: ['string', 'null'] }, channelId: { type: ['string', 'null'] }, createdAt: time,
        attachments: { type: 'array', description: 'claim only: the data URLs' },
      }, required: ['id', 'content', 'status', 'queueMode', 'createdAt'] },
      Binding: obj({
        id: str(), sessionId: str(), channelType, channelId: str(), scopeKey: str(), queueMode,
        collectDebounceMs: { type: 'integer' }, createdAt: time,
      }, ['id', 'sessionId', 'channelType', 'channelId', 'scopeKey', 'queueMode', 'collectDebounceMs', 'createdAt']),
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
