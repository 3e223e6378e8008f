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
  401: { ...err('Missing or invalid authentication (`UNAUTHORIZED`)'), headers: { 'WWW-Authenticate': { description: 'The scheme to authenticate with', schema: { const: 'Bearer' } } } },
  403: err('Admin access required (`FORBIDDEN`)'),
  404: err('Not found (`NOT_FOUND`); another user\'s resource answers the same'),
  409: err('Conflict with existing state'),
  410: err('Gone (e.g. `CREDENTIALS_EXPIRED`)'),
  413: err('Body over the route\'s limit (`PAYLOAD_TOO_LARGE`)'),
  429: err('Too many failed authentications from this address (`RATE_LIMITED`, `Retry-After`)'),
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

const admin = (op) => ({ security: [{ bearer: [] }], ...op, responses: { ...errors(429), ...op.responses, ...errors(401, 403, 500) } });
const user = (op) => ({ security: [{ bearer: [] }], ...op, responses: { ...errors(429), ...op.responses, ...errors(401, 500) } });
const publicOp = (op) => ({ security: [], ...op });

const idParam = [pathParam('id', 'Session id')];
const sessionRead = (summary, schema) => ({
  parameters: idParam,
  get: user({ tags: ['sessions'], summary, responses: { 200: json(schema), ...errors(404) } }),
});
/** A session object's log, a page at a time. */
const sessionLog = (summary, key, item) => ({
  parameters: idParam,
  get: user({
    tags: ['sessions'], summary, parameters: listParams,
    responses: { 200: json(obj({ [key]: { type: 'array', items: item }, hasMore: { type: 'boolean' }, cursor: str() }, [key, 'hasMore'])), ...errors(400, 404) },
  }),
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

const redirectOnly = (summary, description, parameters = [], more = {}) => publicOp({
  tags: ['auth'], summary, description, parameters,
  responses: {
    ...more,
    302: { description: 'Redirect', headers: { Location: { schema: str() } } },
    429: err('Too many sign-in starts from this address (`RATE_LIMITED`, `Retry-After`)'),
    503: err('Sign-in is not configured (`OAUTH_NOT_CONFIGURED`) or no usable ENCRYPTION_KEY'),
  },
});
const pageQuery = [
  { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000 } },
  { name: 'perPage', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 }, description: 'also accepted as per_page' },
];
const ghErrors = { ...errors(400, 502), 429: err('GitHub rate limit (`RATE_LIMITED`, `details.retryAfter` seconds, `Retry-After` header)') };
const ghPaged = (key, item) => json(obj({ [key]: { type: 'array', items: item }, page: { type: 'integer' }, perPage: { type: 'integer' }, hasMore: { type: 'boolean' }, nextPage: { type: 'integer' } }, [key, 'page', 'perPage', 'hasMore']));
const ok = json(obj({ ok: { const: true } }, ['ok']));
const actionErrors = {
  ...errors(400, 404, 502),
  403: err('The connection was not granted a scope the action needs (`SCOPE_MISSING`; `details.missing`: the narrowest scope of each unmet requirement, `details.anyOf`: every scope that meets it); reconnect and allow it'),
  404: err('Integration not found (`NOT_FOUND`), unknown action (`ACTION_NOT_FOUND`) or upstream entity not found'),
  409: err('Integration not active (`INTEGRATION_NOT_ACTIVE`) or its credentials were refused (`RECONNECT_REQUIRED`; the integration goes to `error`)'),
  429: err('Upstream rate limit (`RATE_LIMITED`, `details.retryAfter` seconds, `Retry-After` header)'),
  502: err('Upstream failure (`UPSTREAM_ERROR`, the upstream status in `details.status`)'),
};
const orgRepoBody = (required) => obj({
  ...(required ? { fullName: str({ pattern: '^[^/]+/[^/]+$' }) } : {}),
  description: str({ maxLength: 1000 }), language: str({ maxLength: 50 }), defaultBranch: str(),
  topics: { type: 'array', items: str({ maxLength: 50 }), maxItems: 20 },
  ...(required ? {} : { enabled: { type: 'boolean' } }),
}, required ? ['fullName'] : []);

// JSON-RPC 2.0 as MCP's Streamable HTTP transport carries it (POST /mcp).
const rpcId = { type: ['string', 'number'] };
const rpcMessage = {
  type: 'object', required: ['jsonrpc'],
  properties: { jsonrpc: { const: '2.0' }, id: rpcId, method: str(), params: { type: 'object' }, result: {}, error: {} },
  description: 'A request (`id` and `method`), a notification (`method`, no `id`) or a response to the server (`id` and `result` or `error`)',
};
const rpcError = obj({ code: { type: 'integer' }, message: str(), data: {} }, ['code', 'message']);
const rpcSuccess = obj({ jsonrpc: { const: '2.0' }, id: rpcId, result: { type: 'object' } }, ['jsonrpc', 'id', 'result']);
const rpcFailure = obj({ jsonrpc: { const: '2.0' }, id: { type: ['string', 'number', 'null'] }, error: rpcError }, ['jsonrpc', 'id', 'error']);
const rpcResponse = { oneOf: [rpcSuccess, rpcFailure] };

// The OAuth 2.1 authorization server of /mcp (its errors are RFC 6749 §5.2 JSON, not the envelope).
const oauthError = obj({ error: str(), error_description: str() }, ['error']);
const oauthJson = (schema, description) => ({ description, content: { 'application/json': { schema } } });
const html = (description) => ({ description, content: { 'text/html': { schema: str() } } });
const form = (properties, required) => ({ required: true, content: { 'application/x-www-form-urlencoded': { schema: { type: 'object', properties, required } } } });
const scopes = { type: 'array', items: { enum: ['mcp:read', 'mcp:write'] } };
const authorizeParams = ['response_type', 'client_id', 'redirect_uri', 'code_challenge', 'code_challenge_method', 'state', 'scope', 'resource']
  .map((name) => ({ name, in: 'query', schema: str() }));
const resourceMetadata = {
  get: publicOp({
    tags: ['mcp'], summary: 'OAuth protected resource metadata of /mcp (RFC 9728)',
    responses: { 200: oauthJson(obj({ resource: str(), authorization_servers: { type: 'array', items: str() }, bearer_methods_supported: { type: 'array', items: str() }, scopes_supported: scopes, resource_name: str() }, ['resource', 'authorization_servers', 'bearer_methods_supported', 'scopes_supported']), 'The metadata') },
  }),
};
const oauthPaths = {
  '/.well-known/oauth-protected-resource': resourceMetadata,
  '/.well-known/oauth-protected-resource/mcp': resourceMetadata,
  '/.well-known/oauth-authorization-server': {
    get: publicOp({
      tags: ['mcp'], summary: 'OAuth authorization server metadata (RFC 8414)',
      responses: { 200: oauthJson({ type: 'object', required: ['issuer', 'authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'revocation_endpoint', 'response_types_supported', 'grant_types_supported', 'code_challenge_methods_supported', 'token_endpoint_auth_methods_supported', 'scopes_supported', 'client_id_metadata_document_supported'] }, 'The metadata') },
    }),
  },
  '/oauth/register': {
    post: publicOp({
      tags: ['mcp'], summary: 'Dynamic client registration (RFC 7591): public clients (PKCE, no secret)',
      description: 'Redirect URIs must be https, or http on a loopback host (any port is then accepted at authorization). `token_endpoint_auth_method`, when given, must be `none`.',
      requestBody: body({ type: 'object', properties: { redirect_uris: { type: 'array', items: str() }, client_name: str(), grant_types: { type: 'array', items: str() }, response_types: { type: 'array', items: str() }, token_endpoint_auth_method: str(), scope: str() }, required: ['redirect_uris'] }),
      responses: {
        201: oauthJson(obj({ client_id: str(), client_id_issued_at: { type: 'integer' }, client_name: str(), redirect_uris: { type: 'array', items: str() }, grant_types: { type: 'array', items: str() }, response_types: { type: 'array', items: str() }, token_endpoint_auth_method: { const: 'none' }, scope: str() }, ['client_id', 'redirect_uris']), 'Registered'),
        400: oauthJson(oauthError, '`invalid_redirect_uri` or `invalid_client_metadata`'),
        413: E[413], 429: err('Too many registrations from this address (`RATE_LIMITED`)'), 500: E[500],
      },
    }),
  },
  '/oauth/authorize': {
    get: publicOp({
      tags: ['mcp'], summary: 'Authorization endpoint: the sign-in page, then the consent page (HTML, no JavaScript)',
      description: 'PKCE S256 is required. An unknown client or an unregistered redirect URI is shown as an error page (400), never redirected to; other errors go back to the redirect URI with `error`, `state` and `iss`. ' +
        'A browser that is not signed in gets a page of sign-in links that come back here. `client_id` may be an https URL (a client ID metadata document: https only, public hosts, at most 5 KB, 5-second timeout, cached a day).',
      parameters: authorizeParams,
      responses: { 200: html('The sign-in or consent page'), 302: { description: 'Back to the client with an error', headers: { Location: { schema: str() } } }, 400: html('An unknown client or redirect URI'), 500: E[500], 503: err('No usable ENCRYPTION_KEY') },
    }),
    post: publicOp({
      tags: ['mcp'], summary: 'The consent form: approve (a single-use, 60-second code) or deny (`access_denied`)',
      requestBody: form({ decision: { enum: ['approve', 'deny'] }, csrf: str(), write: str(), client_id: str(), redirect_uri: str(), response_type: str(), code_challenge: str(), code_challenge_method: str(), state: str(), scope: str(), resource: str() }, ['decision', 'csrf', 'client_id', 'redirect_uri']),
      responses: { 302: { description: 'Back to the client with `code` (or `error`), `state` and `iss`', headers: { Location: { schema: str() } } }, 400: html('An unknown client or redirect URI'), 403: html('An expired form, a form from another site or another browser'), 413: E[413], 500: E[500], 503: err('No usable ENCRYPTION_KEY') },
    }),
  },
  '/oauth/token': {
    post: publicOp({
      tags: ['mcp'], summary: 'Token endpoint: authorization_code (PKCE verified) and refresh_token (rotated; a reused one revokes its grant)',
      requestBody: form({ grant_type: { enum: ['authorization_code', 'refresh_token'] }, client_id: str(), code: str(), code_verifier: str(), redirect_uri: str(), refresh_token: str(), scope: str() }, ['grant_type', 'client_id']),
      responses: {
        200: oauthJson(obj({ access_token: str(), token_type: { const: 'Bearer' }, expires_in: { type: 'integer' }, refresh_token: str(), scope: str() }, ['access_token', 'token_type', 'expires_in', 'refresh_token', 'scope']), 'Tokens (access: 1 hour, /mcp only; refresh: 30 days, single use)'),
        400: oauthJson(oauthError, '`invalid_request`, `invalid_grant`, `unsupported_grant_type` or `invalid_scope`'),
        401: oauthJson(oauthError, '`invalid_client`'),
        413: E[413], 500: E[500],
      },
    }),
  },
  '/oauth/revoke': {
    post: publicOp({
      tags: ['mcp'], summary: 'Token revocation (RFC 7009): a refresh token revokes its whole grant; unknown tokens are answered 200 too',
      requestBody: form({ token: str(), token_type_hint: str(), client_id: str() }, ['token', 'client_id']),
      responses: { 200: oauthJson({ type: 'object' }, 'Revoked (or unknown)'), 400: oauthJson(oauthError, '`invalid_request`'), 413: E[413], 500: E[500] },
    }),
  },
  '/api/me/mcp-clients': {
    get: user({
      tags: ['mcp'], summary: 'The MCP clients holding a live OAuth grant of the caller\'s',
      responses: { 200: json(obj({ clients: { type: 'array', items: obj({ clientId: str(), clientName: str(), scopes, createdAt: time, lastUsedAt: { type: ['string', 'null'] } }, ['clientId', 'clientName', 'scopes', 'createdAt', 'lastUsedAt']) } }, ['clients'])) },
    }),
  },
  '/api/me/mcp-clients/{clientId}': {
    parameters: [pathParam('clientId', 'The client\'s id (a registration id or a metadata document URL)')],
    delete: user({ tags: ['mcp'], summary: 'Revoke every grant of the caller\'s to this client', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
};

const paths = {
  ...Object.fromEntries(['github', 'google'].flatMap((p) => {
    const name = p === 'github' ? 'GitHub' : 'Google';
    return [
      [`/auth/${p}`, { get: redirectOnly(`Start signing in with ${name}`,
        `Sets an HttpOnly nonce cookie and redirects to ${name}'s consent page with a single-use, 10-minute state and PKCE (S256). \`invite_code\` carries an invite through the flow.`,
        [{ name: 'invite_code', in: 'query', schema: str() },
          { name: 'return_to', in: 'query', schema: str(), description: 'Only `/oauth/authorize?…`: the MCP authorization page that started the sign-in; the browser comes back there signed in (cookie `mcp_signin`, path /oauth, 15 minutes) instead of going to the frontend' }],
        { 400: err('A `return_to` that is not the MCP authorization page (`VALIDATION_ERROR`)') }) }],
      [`/auth/${p}/callback`, { get: redirectOnly(`${name} sign-in callback`,
        `Redirects to \`FRONTEND_URL/auth/callback#code=<one-time code>&provider=${p}\` (exchange the code with POST /auth/exchange within 60 seconds), or to \`FRONTEND_URL/login?error=<code>\` with code one of ` +
        `missing_params, invalid_state, access_denied, token_exchange_failed, ${p}_profile_failed, no_email, not_allowed, oauth_error.`,
        [{ name: 'code', in: 'query', schema: str() }, { name: 'state', in: 'query', schema: str() }, { name: 'error', in: 'query', schema: str() }]) }],
    ];
  })),
  '/mcp': {
    post: user({
      tags: ['mcp'], summary: 'Model Context Protocol server (Streamable HTTP, JSON answers, stateless)',
      description: 'One JSON-RPC message per POST: `initialize` (protocol versions 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05; an unknown one is answered with 2025-11-25), ' +
        'or, in protocol revision 2026-07-28 (stateless), any request with its `_meta` envelope (`io.modelcontextprotocol/protocolVersion`, `clientInfo`, `clientCapabilities`) mirrored by the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers: `server/discover`, `tools/list`, `tools/call` ' +
        '(-32020 when headers and body disagree, -32022 with `data.supported` for an unknown revision, HTTP 400; -32601 with HTTP 404 for other methods). ' +
        'Bearer API tokens, sign-in session tokens, and OAuth access tokens issued by this service\'s authorization server for this resource (`/.well-known/oauth-protected-resource/mcp`); a token with only `mcp:read` lists and runs only read-only tools (a write tool answers `isError` naming the missing scope). ' +
        '`notifications/initialized` and other notifications (202), `ping`, `tools/list` (paginated with `cursor`/`nextCursor`) and `tools/call`. ' +
        'Tools are the actions of the caller\'s active integrations, named `<service>_<action>` (with a short integration id appended when two integrations of one service are visible; ' +
        'another user\'s org-scope integration offers its read actions only), with the action\'s JSON Schema as `inputSchema`, plus `integrations_list` and `entities_search`. ' +
        'Protocol faults are JSON-RPC errors: -32700 parse error and -32600 invalid request (HTTP 400; also an unsupported `MCP-Protocol-Version`, and batches, which only 2025-03-26 has), ' +
        '-32601 method not found, -32602 invalid params (an unknown tool, or arguments that do not fit its schema), -32603 internal error (HTTP 200). ' +
        'An action\'s failure (the provider\'s refusal, a rate limit, a needed reconnection) is a tool result with `isError: true`. ' +
        'No session id is issued; `GET /mcp` answers 405 (no server-sent stream). A browser `Origin` must be `FRONTEND_URL` (or its preview subdomains, or a local frontend while developing) or `PUBLIC_URL`.',
      parameters: [
        { name: 'MCP-Protocol-Version', in: 'header', schema: { enum: ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] }, description: 'The negotiated version (sent after initialize), or 2026-07-28 on every request of that revision; any other value answers 400' },
        { name: 'Mcp-Method', in: 'header', schema: str(), description: '2026-07-28: the request\'s method' },
        { name: 'Mcp-Name', in: 'header', schema: str(), description: '2026-07-28: the tool of a tools/call' },
      ],
      requestBody: {
        required: true,
        content: { 'application/json': {
          schema: { oneOf: [rpcMessage, { type: 'array', items: rpcMessage, minItems: 1, description: 'A batch (protocol 2025-03-26 only, with the header naming it)' }] },
          example: { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
        } },
      },
      responses: {
        200: json({ oneOf: [rpcResponse, { type: 'array', items: rpcResponse }] }, 'The JSON-RPC response (an array of them for a batch)'),
        202: { description: 'Accepted: the body held only notifications or responses' },
        400: json(rpcFailure, 'Parse error (-32700), invalid request (-32600), an unsupported MCP-Protocol-Version or a batch under 2025-06-18; 2026-07-28: a missing envelope (-32602), headers disagreeing with the body (-32020), an unknown revision (-32022)'),
        404: json(rpcFailure, '2026-07-28: a method this server does not have (-32601)'),
        403: err('A browser Origin this service does not trust (`ORIGIN_NOT_ALLOWED`)'),
        413: E[413],
      },
    }),
  },
  ...oauthPaths,
  '/auth/exchange': {
    post: publicOp({
      tags: ['auth'], summary: 'Exchange a sign-in\'s one-time code (single use, 60 seconds) for a session token',
      requestBody: body(obj({ code: str({ minLength: 1, maxLength: 200 }), provider: { enum: ['github', 'google'] } }, ['code'])),
      responses: {
        200: json(obj({ token: str(), expiresAt: time, user: obj({ id: str(), email: str(), name: { type: ['string', 'null'] }, role: { enum: ['member', 'admin'] } }, ['id', 'email', 'role']) }, ['token', 'expiresAt', 'user'])),
        400: err('Malformed input, or an unknown, expired or used code (`INVALID_CODE`)'), 413: E[413], 500: E[500],
      },
    }),
  },
  '/auth/logout': {
    post: user({ tags: ['auth'], summary: 'Revoke the calling sign-in session (API tokens are revoked with DELETE /api/api-tokens/:id)', responses: { 200: json(ref('Success')), 400: err('Called with an API token (`NOT_A_SESSION`)') } }),
  },
  '/api/me/sessions': {
    get: user({
      tags: ['auth'], summary: 'The caller\'s sign-in sessions',
      responses: { 200: json(obj({ sessions: { type: 'array', items: obj({ id: str(), provider: str(), createdAt: time, expiresAt: time, lastUsedAt: time, current: { type: 'boolean' } }, ['id', 'provider', 'createdAt', 'expiresAt', 'current']) } }, ['sessions'])) },
    }),
  },
  '/api/me/sessions/{id}': {
    parameters: [pathParam('id', 'Sign-in session id')],
    delete: user({ tags: ['auth'], summary: 'Revoke one of the caller\'s sign-in sessions (its API tokens stay)', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
  '/api/admin/org-settings': {
    get: admin({ tags: ['org'], summary: 'Sign-up gating settings', responses: { 200: json(ref('OrgSettings')) } }),
    put: admin({
      tags: ['org'], summary: 'Update sign-up gating (fields given are changed)',
      requestBody: body(obj({ name: str({ minLength: 1, maxLength: 100 }), domainGatingEnabled: { type: 'boolean' }, allowedDomains: { type: 'array', items: str() }, emailAllowlistEnabled: { type: 'boolean' }, allowedEmails: { type: 'array', items: str({ format: 'email' }) } })),
      responses: { 200: json(ref('OrgSettings')), ...errors(400) },
    }),
  },
  '/api/admin/invites': {
    post: admin({
      tags: ['org'], summary: 'Create an invite (the code is shown once); bound to an email when one is given',
      requestBody: body(obj({ email: str({ format: 'email' }), role: { enum: ['member', 'admin'] }, expiresInDays: { type: 'integer', minimum: 1, maximum: 90 } }), false),
      responses: { 201: json(obj({ invite: obj({ id: str(), code: str(), email: str(), role: str(), expiresAt: time }, ['id', 'code', 'role', 'expiresAt']) }, ['invite']), 'Created'), ...errors(400) },
    }),
    get: admin({
      tags: ['org'], summary: 'Invites, newest first (codes are not listed)', parameters: listParams,
      responses: { 200: json(obj({ invites: { type: 'array', items: obj({ id: str(), email: { type: ['string', 'null'] }, role: str(), expiresAt: time, usedAt: { type: ['string', 'null'] }, createdAt: time }, ['id', 'role', 'expiresAt', 'createdAt']) }, hasMore: { type: 'boolean' }, cursor: str() }, ['invites', 'hasMore'])), ...errors(400) },
    }),
  },
  '/api/admin/invites/{id}': {
    parameters: [pathParam('id', 'Invite id')],
    delete: admin({ tags: ['org'], summary: 'Delete an invite', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
  '/api/admin/maintenance/reseal': {
    post: admin({ tags: ['org'], summary: 'Re-seal every legacy-format or previous-key value under the current key (background, in batches)', responses: { 202: json(obj({ job: ref('MaintenanceJob') }, ['job']), 'Started'), ...errors(409, 503) } }),
    get: admin({ tags: ['org'], summary: 'The re-seal job\'s progress', responses: { 200: json(obj({ job: { oneOf: [ref('MaintenanceJob'), { type: 'null' }] } }, ['job'])) } }),
  },
  '/api/me/github-token': {
    put: user({
      tags: ['github'], summary: 'Connect a GitHub personal access token (checked with GET /user first)',
      requestBody: body(obj({ token: str({ minLength: 20, maxLength: 255, pattern: '^[A-Za-z0-9_]+$' }) }, ['token'])),
      responses: { 200: json(obj({ connected: { const: true }, login: str(), scopes: { type: 'array', items: str() } }, ['connected', 'login', 'scopes'])), ...errors(400, 502, 503) },
    }),
    delete: user({ tags: ['github'], summary: 'Remove the stored GitHub token', responses: { 200: json(obj({ connected: { const: false } })), ...errors(404) } }),
  },
  '/api/repos': {
    get: user({
      tags: ['github'], summary: 'The caller\'s GitHub repositories',
      parameters: [...pageQuery, { name: 'sort', in: 'query', schema: { enum: ['created', 'updated', 'pushed', 'full_name'] } }],
      responses: { 200: ghPaged('repos', obj({ id: { type: 'integer' }, name: str(), fullName: str(), private: { type: 'boolean' }, description: {}, url: str(), cloneUrl: str(), defaultBranch: str(), updatedAt: str(), language: {} })), ...ghErrors },
    }),
  },
  '/api/repos/validate': {
    get: user({
      tags: ['github'], summary: 'Check a repository URL and the caller\'s push access',
      parameters: [{ name: 'url', in: 'query', required: true, schema: str(), description: 'https://github.com/o/r(.git), git@github.com:o/r.git or o/r' }],
      responses: { 200: json({ oneOf: [
        obj({ valid: { const: true }, repo: obj({ fullName: str(), defaultBranch: str(), private: { type: 'boolean' }, canPush: { type: 'boolean' }, cloneUrl: str() }), pushDeniedReason: str() }, ['valid', 'repo']),
        obj({ valid: { const: false }, error: str() }, ['valid', 'error']),
      ] }), ...ghErrors },
    }),
  },
  '/api/repos/{owner}/{repo}/pulls': {
    parameters: [pathParam('owner', 'Owner'), pathParam('repo', 'Repository (dots allowed)')],
    get: user({ tags: ['github'], summary: 'Open pull requests', parameters: pageQuery, responses: { 200: ghPaged('pulls', { type: 'object' }), ...ghErrors } }),
  },
  '/api/repos/{owner}/{repo}/issues': {
    parameters: [pathParam('owner', 'Owner'), pathParam('repo', 'Repository (dots allowed)')],
    get: user({ tags: ['github'], summary: 'Open issues (pull requests excluded)', parameters: pageQuery, responses: { 200: ghPaged('issues', { type: 'object' }), ...ghErrors } }),
  },
  '/api/repos/pull-request': {
    post: user({
      tags: ['github'], summary: 'Create a pull request; an existing one for the same head is returned instead',
      parameters: [{ name: 'repo', in: 'query', required: true, schema: str() }],
      description: 'With `sessionId` (one of the caller\'s live sessions, checked before GitHub is called) the PR becomes that session\'s own PR (`prNumber`), whose state later deliveries keep current.',
      requestBody: body(obj({ branch: str({ minLength: 1 }), title: str({ minLength: 1, maxLength: 256 }), body: str(), base: str({ description: 'default: the repository\'s default branch' }), sessionId: str({ format: 'uuid' }) }, ['branch', 'title'])),
      responses: { 200: json(obj({ pr: obj({ number: { type: 'integer' }, url: str(), title: str(), state: str() }), existing: { type: 'boolean' } }, ['pr', 'existing'])), ...ghErrors, 404: err('No such session of the caller\'s'), 409: err('The session is finished (`SESSION_FINISHED`)') },
    }),
  },
  '/api/repos/org': {
    get: user({ tags: ['org'], summary: 'Enabled org repositories', responses: { 200: json(obj({ repos: { type: 'array', items: ref('OrgRepo') } }, ['repos'])) } }),
  },
  '/api/admin/repos': {
    get: admin({ tags: ['org'], summary: 'All org repositories, disabled ones included', responses: { 200: json(obj({ repos: { type: 'array', items: ref('OrgRepo') } }, ['repos'])) } }),
    post: admin({ tags: ['org'], summary: 'Add an org repository', requestBody: body(orgRepoBody(true)), responses: { 201: json(ref('OrgRepo'), 'Created'), ...errors(400, 409) } }),
  },
  '/api/admin/repos/{id}': {
    parameters: [pathParam('id', 'Org repository id')],
    put: admin({ tags: ['org'], summary: 'Update an org repository', requestBody: body(orgRepoBody(false)), responses: { 200: json(obj({ ok: { const: true }, repo: ref('OrgRepo') })), ...errors(400, 404) } }),
    delete: admin({ tags: ['org'], summary: 'Remove an org repository', responses: { 200: ok, ...errors(404) } }),
  },
  '/api/admin/repos/{id}/persona-default': {
    parameters: [pathParam('id', 'Org repository id')],
    put: admin({ tags: ['org'], summary: 'Set the default persona (must exist and be shared)', requestBody: body(obj({ personaId: str() }, ['personaId'])), responses: { 200: ok, ...errors(400, 404) } }),
    delete: admin({ tags: ['org'], summary: 'Clear the default persona', responses: { 200: ok, ...errors(404) } }),
  },
  '/api/admin/personas': {
    get: admin({ tags: ['org'], summary: 'Personas', responses: { 200: json(obj({ personas: { type: 'array', items: ref('Persona') } }, ['personas'])) } }),
    post: admin({ tags: ['org'], summary: 'Create a persona', requestBody: body(obj({ name: str({ maxLength: 100 }), slug: str({ pattern: '^[a-z0-9-]+$' }), description: str(), visibility: { enum: ['private', 'shared'] } }, ['name'])), responses: { 201: json(ref('Persona'), 'Created'), ...errors(400, 409) } }),
  },
  '/api/admin/personas/{id}': {
    parameters: [pathParam('id', 'Persona id')],
    delete: admin({ tags: ['org'], summary: 'Delete a persona', responses: { 200: ok, ...errors(404) } }),
  },
  '/webhooks/github': {
    post: publicOp({
      tags: ['webhooks'], summary: 'GitHub webhook (pull_request, push, ping). Body limit 25 MiB.',
      description: 'Verified with X-Hub-Signature-256 (HMAC-SHA256 of the raw body, GITHUB_WEBHOOK_SECRET) before anything else; idempotent per X-GitHub-Delivery (required). Replay-proof: a PR update applies only when its pull_request.updated_at is newer than the stored one, and a push counts once per (session, after SHA).',
      parameters: ['X-GitHub-Event', 'X-GitHub-Delivery', 'X-Hub-Signature-256'].map((name) => ({ name, in: 'header', schema: str(), required: true })),
      requestBody: body({ type: 'object' }),
      responses: {
        200: json(obj({ received: { const: true }, event: str(), deliveryId: str(), sessionsUpdated: { type: 'integer' }, duplicate: { type: 'boolean' } }, ['received', 'event'])),
        400: err('Missing event header (`MISSING_EVENT`), missing or over-long delivery id (`MISSING_DELIVERY`), body not JSON (`INVALID_JSON`) or a push without a valid `after` SHA (`VALIDATION_ERROR`)'),
        401: err('Missing or wrong signature (`INVALID_SIGNATURE`)'),
        413: E[413],
        503: err('No GITHUB_WEBHOOK_SECRET configured (`WEBHOOK_NOT_CONFIGURED`): deliveries are refused'),
      },
    }),
  },
  '/api/integrations': {
    get: user({ tags: ['integrations'], summary: 'The caller\'s integrations, then org-scope ones of others', responses: { 200: json(obj({ integrations: { type: 'array', items: ref('Integration') } }, ['integrations'])) } }),
    post: user({
      tags: ['integrations'], summary: 'Connect a service: credentials validated, tested and stored encrypted',
      requestBody: body(obj({
        service: { enum: ['github', 'gmail', 'google_calendar', 'google_drive', 'notion', 'hubspot', 'ashby', 'discord', 'xero'] },
        credentials: { type: 'object', additionalProperties: str() },
        config: ref('IntegrationConfig'),
      }, ['service', 'credentials', 'config'])),
      responses: {
        201: json(obj({ integration: ref('Integration') }, ['integration']), 'Created'),
        400: err('`VALIDATION_ERROR`, `UNSUPPORTED_INTEGRATION`, `INVALID_CREDENTIALS` or `INTEGRATION_AUTH_FAILED`'),
        409: err('`INTEGRATION_ALREADY_EXISTS`'),
        ...errors(429, 502, 503),
      },
    }),
  },
  '/api/integrations/available': {
    get: user({ tags: ['integrations'], summary: 'Registered services: their entity types, action names and whether they connect through OAuth', responses: { 200: json(obj({ services: { type: 'array', items: obj({ service: str(), supportedEntities: { type: 'array', items: str() }, actions: { type: 'array', items: str() }, oauth: { type: 'boolean' } }, ['service', 'supportedEntities', 'actions', 'oauth']) } }, ['services'])) } }),
  },
  '/api/integrations/{id}': {
    parameters: [pathParam('id', 'Integration id')],
    get: user({ tags: ['integrations'], summary: 'One integration (own, or org-scope)', responses: { 200: json(obj({ integration: ref('Integration') }, ['integration'])), ...errors(404) } }),
    patch: user({
      tags: ['integrations'], summary: 'Update config; reactivate (status "active", after re-testing the connection); set scope (admins)',
      requestBody: body(obj({ config: ref('IntegrationConfig'), status: { const: 'active' }, scope: { enum: ['user', 'org'] } })),
      responses: { 200: json(obj({ integration: ref('Integration') }, ['integration'])), ...errors(400, 403, 404, 502) },
    }),
    delete: user({ tags: ['integrations'], summary: 'Disconnect: credentials revoked, the integration\'s stored data dropped (through the queue, retried until done)', description: 'A grant obtained through the OAuth round trip is also revoked at the provider (Google\'s revocation endpoint, GitHub\'s DELETE /applications/{client_id}/grant) after the answer, best effort: a provider that is down does not stop the deletion. Tokens given directly are left valid, and so is a grant another of the user\'s integrations (or their GitHub sign-in) still uses.', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
  '/api/integrations/{id}/events': {
    parameters: [pathParam('id', 'Integration id')],
    get: user({
      tags: ['integrations'], summary: 'Connection health of the caller\'s own integration, newest first: each change of its status to `error` (`RECONNECT_REQUIRED`) or from `error` back to `active`',
      description: 'Each event is also told to the owner\'s orchestrator session as a message (within a minute; `notifiedAt`).',
      parameters: listParams,
      responses: { 200: json(obj({ events: { type: 'array', items: ref('IntegrationEvent') }, cursor: str(), hasMore: { type: 'boolean' } }, ['events', 'hasMore'])), ...errors(400, 404) },
    }),
  },
  '/api/integrations/{id}/sync': {
    parameters: [pathParam('id', 'Integration id')],
    post: user({
      tags: ['integrations'], summary: 'Queue a sync (empty or missing entities = all); it runs in queue consumers, slice by slice',
      requestBody: body(obj({ entities: { type: 'array', items: str() }, fullSync: { type: 'boolean' } }), false),
      responses: { 202: json(obj({ syncId: str(), status: { const: 'started' } }, ['syncId', 'status']), 'Started'), 409: err('`SYNC_IN_PROGRESS`'), ...errors(400, 404) },
    }),
  },
  '/api/integrations/{id}/sync/{syncId}': {
    parameters: [pathParam('id', 'Integration id'), pathParam('syncId', 'Sync id')],
    get: user({ tags: ['integrations'], summary: 'A sync run and its progress', responses: { 200: json(ref('SyncRun')), ...errors(404) } }),
  },
  '/api/integrations/{id}/syncs': {
    parameters: [pathParam('id', 'Integration id')],
    get: user({
      tags: ['integrations'], summary: 'The integration\'s sync runs, newest first (the run log; each run as its status route shows it)',
      parameters: listParams,
      responses: { 200: json(obj({ syncs: { type: 'array', items: ref('SyncRun') }, cursor: str(), hasMore: { type: 'boolean' } }, ['syncs', 'hasMore'])), ...errors(400, 404) },
    }),
  },
  '/api/integrations/{id}/entities/{type}': {
    parameters: [pathParam('id', 'Integration id'), pathParam('type', 'Entity type')],
    get: user({
      tags: ['integrations'], summary: 'Synced entities, by external id (`_sync.externalId`; `id` is the provider\'s own id where the data has one, e.g. a Calendar event\'s, which is stored as `calendarId/eventId`); deleted ones are marked (`_sync.deleted`)',
      parameters: [...listParams, { name: 'modifiedAfter', in: 'query', schema: time }, { name: 'includeDeleted', in: 'query', schema: { enum: ['true', 'false'] } }],
      responses: { 200: json(obj({ entities: { type: 'array', items: { type: 'object' } }, cursor: str(), hasMore: { type: 'boolean' } }, ['entities', 'hasMore'])), ...errors(400, 404) },
    }),
  },
  '/api/integrations/{id}/fetch': {
    parameters: [pathParam('id', 'Integration id')],
    post: user({
      tags: ['integrations'], summary: 'Fetch one entity live (GitHub repositories: owner/repo; issues, pull_requests: owner/repo#n; Gmail messages, threads, labels, drafts: their ids; Calendar events: calendarId/eventId) and store it',
      requestBody: body(obj({ entityType: { enum: ['repositories', 'issues', 'pull_requests', 'messages', 'threads', 'labels', 'drafts'] }, externalId: str() }, ['entityType', 'externalId'])),
      responses: { 200: json(obj({ entity: { type: 'object' } }, ['entity'])), ...actionErrors },
    }),
  },
  '/api/integrations/{id}/push': {
    parameters: [pathParam('id', 'Integration id')],
    post: user({
      tags: ['integrations'], summary: 'Create an issue ({repository, title, body?}) or a comment ({repository, number, body}) on GitHub; send a message or create a draft on Gmail (send_email / create_draft parameters)',
      requestBody: body(obj({ entityType: { enum: ['issues', 'comments', 'messages', 'drafts'] }, data: { type: 'object' } }, ['entityType', 'data'])),
      responses: { 201: json(obj({ result: { type: 'object' } }, ['result']), 'Created'), ...actionErrors },
    }),
  },
  '/api/integrations/{id}/actions': {
    parameters: [pathParam('id', 'Integration id')],
    get: user({
      tags: ['integrations'], summary: 'What an agent can do through this integration: each action with the JSON Schema (draft 2020-12) of its parameters',
      responses: { 200: json(obj({ actions: { type: 'array', items: obj({ name: str(), description: str(), params: { type: 'object' } }, ['name', 'description', 'params']) } }, ['actions'])), ...errors(404) },
    }),
  },
  '/api/integrations/{id}/actions/{name}': {
    parameters: [pathParam('id', 'Integration id'), pathParam('name', 'Action name')],
    post: user({
      tags: ['integrations'], summary: 'Run an action; the body is its parameters, validated against its schema',
      description: 'Write actions on an org-scope integration are for its owner only (others get 404). The touched entities are stored as a sync would.',
      requestBody: body({ type: 'object' }, false),
      responses: { 200: json(obj({ result: {} }, ['result'])), ...actionErrors },
    }),
  },
  '/api/integrations/{id}/search': {
    parameters: [pathParam('id', 'Integration id')],
    get: user({
      tags: ['integrations'], summary: 'Full-text search of the entities this integration synced, best match first (bm25)',
      description: 'Searches titles and text (issue and pull request titles and bodies, commit messages, repository names and descriptions; ' +
        'mail subjects, senders and text; event summaries, descriptions and locations) with SQLite FTS5, kept current by every sync, webhook and action. ' +
        'Readable as the entities are (the owner, or anyone for an org-scope integration); deleted entities never match. ' +
        'Every word must match (diacritics and case ignored); `"a phrase"`, a trailing `*` for a prefix, and `OR` between two terms are understood; ' +
        'any other syntax only separates words. The snippet wraps each match in `**`.',
      parameters: [
        { name: 'q', in: 'query', required: true, schema: str({ minLength: 1, maxLength: 500 }), description: 'The words to find' },
        { name: 'type', in: 'query', schema: str(), description: 'Only this entity type (one of the service\'s supportedEntities)' },
        ...listParams,
      ],
      responses: { 200: json(obj({ results: { type: 'array', items: ref('SearchResult') }, cursor: str(), hasMore: { type: 'boolean' } }, ['results', 'hasMore'])), ...errors(400, 404) },
    }),
  },
  '/api/search': {
    get: user({
      tags: ['integrations'], summary: 'Full-text search across every integration the caller may read (their own and the organization\'s), best match first',
      description: 'Each integration\'s own index is searched in parallel and the answers are merged by rank (bm25). Query syntax as for one integration\'s search.',
      parameters: [
        { name: 'q', in: 'query', required: true, schema: str({ minLength: 1, maxLength: 500 }), description: 'The words to find' },
        { name: 'type', in: 'query', schema: str(), description: 'Only this entity type' },
        ...listParams,
      ],
      responses: { 200: json(obj({ results: { type: 'array', items: ref('SearchResultAcross') }, cursor: str(), hasMore: { type: 'boolean' } }, ['results', 'hasMore'])), ...errors(400) },
    }),
  },
  '/api/admin/data-plane': {
    get: admin({
      tags: ['integrations'], summary: 'Integrations whose data is still being copied from D1 into their own Durable Object (after an upgrade)',
      responses: { 200: json(obj({ remaining: { type: 'integer' }, moving: { type: 'integer' } }, ['remaining', 'moving'])) },
    }),
  },
  '/api/me/audit': {
    get: user({
      tags: ['integrations'], summary: 'The caller\'s audit trail: every action run (REST and MCP), newest first; argument values are never recorded',
      parameters: listParams,
      responses: { 200: json(obj({ entries: { type: 'array', items: ref('AuditEntry') }, cursor: str(), hasMore: { type: 'boolean' } }, ['entries', 'hasMore'])), ...errors(400) },
    }),
  },
  '/api/admin/audit': {
    get: admin({
      tags: ['admin'], summary: 'Every user\'s action runs (or one user\'s), newest first',
      parameters: [...listParams, { name: 'userId', in: 'query', schema: str(), description: 'only this user\'s runs' }],
      responses: { 200: json(obj({ entries: { type: 'array', items: ref('AuditEntry') }, cursor: str(), hasMore: { type: 'boolean' } }, ['entries', 'hasMore'])), ...errors(400) },
    }),
  },
  '/api/integrations/{service}/oauth': {
    parameters: [pathParam('service', 'Service (github, gmail)')],
    get: user({
      tags: ['integrations'], summary: 'Start connecting through OAuth: {url, state}; the state is stored server-side, bound to the caller',
      parameters: [{ name: 'redirect_uri', in: 'query', required: true, schema: str(), description: 'on FRONTEND_URL or this service' }],
      responses: { 200: json(obj({ url: str(), state: str() }, ['url', 'state'])), ...errors(400, 503) },
    }),
  },
  '/api/integrations/{service}/oauth/callback': {
    parameters: [pathParam('service', 'Service (github, gmail)')],
    post: user({
      tags: ['integrations'], summary: 'Finish OAuth: the code is exchanged and stored here; answers the integration, never a token',
      requestBody: body(obj({ code: str(), state: str(), redirect_uri: str() }, ['code', 'state', 'redirect_uri'])),
      responses: { 200: json(obj({ integration: ref('Integration') }, ['integration'])), 400: err('`INVALID_STATE`, `OAUTH_EXCHANGE_FAILED`, `INTEGRATION_AUTH_FAILED`'), ...errors(503) },
    }),
  },
  '/api/admin/custom-providers': {
    get: admin({ tags: ['providers'], summary: 'Custom OpenAI-compatible LLM providers, by display name (keys never shown: `hasKey`)', responses: { 200: json(obj({ providers: { type: 'array', items: ref('CustomProvider') } }, ['providers'])) } }),
  },
  '/api/admin/custom-providers/{providerId}': {
    parameters: [pathParam('providerId', 'lowercase letters, digits and hyphens, 1-50; not anthropic, openai, google or parallel')],
    put: admin({
      tags: ['providers'], summary: 'Create or update a provider. `apiKey` absent keeps the stored key while the base URL keeps its origin (scheme, host, port; another origin drops it); null or "" removes it',
      requestBody: body(obj({
        displayName: str({ minLength: 1, maxLength: 100 }), baseUrl: str({ format: 'uri', description: 'absolute http(s) URL; loopback, private, link-local and unique-local hosts only with ALLOW_PRIVATE_PROVIDER_URLS=true' }),
        models: { type: 'array', minItems: 1, items: obj({ id: str({ minLength: 1 }), name: str(), contextWindow: { type: 'integer', minimum: 1 }, maxOutputTokens: { type: 'integer', minimum: 1 } }, ['id']) },
        apiKey: { type: ['string', 'null'] },
      }, ['displayName', 'baseUrl', 'models'])),
      responses: { 200: json(obj({ provider: ref('CustomProvider') }, ['provider'])), ...errors(400, 503) },
    }),
    delete: admin({ tags: ['providers'], summary: 'Remove a provider', responses: { 200: ok, ...errors(400, 404) } }),
  },
  '/api/admin/custom-providers/{providerId}/test': {
    parameters: [pathParam('providerId', 'Provider id')],
    post: admin({
      tags: ['providers'], summary: 'Call GET {baseUrl}/models with the stored key (5 s timeout); a refusal is `ok: false` with its status; a private base URL without ALLOW_PRIVATE_PROVIDER_URLS is not called (400)',
      responses: { 200: json(obj({ ok: { type: 'boolean' }, status: { type: 'integer' }, models: { type: 'array', items: str() } }, ['ok', 'status', 'models'])), ...errors(400, 404, 502) },
    }),
  },
  '/webhooks/google/pubsub': {
    post: publicOp({
      tags: ['webhooks'], summary: 'Gmail push through a Pub/Sub push subscription: `Authorization: Bearer` Google OIDC token (RS256 over GOOGLE_CERTS_URL\'s keys; aud GOOGLE_PUBSUB_AUDIENCE, email GOOGLE_PUBSUB_SERVICE_ACCOUNT verified, iss accounts.google.com, not expired)',
      description: 'The message\'s data (base64 JSON `{emailAddress, historyId}`) enqueues one incremental sync of each active realtime Gmail integration watching that mailbox; a sync already waiting absorbs it (a flood enqueues one). A repeated `messageId` is acknowledged once.',
      parameters: [{ name: 'Authorization', in: 'header', required: true, schema: str() }],
      requestBody: body(obj({ message: obj({ data: str(), messageId: str(), message_id: str(), publishTime: str(), publish_time: str(), attributes: { type: 'object' } }, ['data', 'messageId']), subscription: str(), deliveryAttempt: { type: 'integer' } }, ['message'])),
      responses: { 200: json(obj({ received: { const: true }, integrations: { type: 'integer' }, duplicate: { type: 'boolean' } }, ['received'])), 400: E[400], 401: err('No, invalid, expired or foreign token (`UNAUTHORIZED`)'), 413: E[413], 502: err('Google\'s keys could not be fetched (`UPSTREAM_ERROR`)'), 503: err('No GOOGLE_PUBSUB_AUDIENCE or GOOGLE_PUBSUB_SERVICE_ACCOUNT (`WEBHOOK_NOT_CONFIGURED`)'), 500: E[500] },
    }),
  },
  '/webhooks/google/calendar': {
    post: publicOp({
      tags: ['webhooks'], summary: 'Google Calendar channel notifications: X-Goog-Channel-ID must name a live channel (404), X-Goog-Channel-Token its secret (401, constant time)',
      description: '`X-Goog-Resource-State: sync` is acknowledged; `exists` enqueues an incremental sync of that channel\'s calendar (coalesced: one waiting run absorbs the rest).',
      parameters: ['X-Goog-Channel-ID', 'X-Goog-Channel-Token', 'X-Goog-Resource-State'].map((name) => ({ name, in: 'header', required: true, schema: str() }))
        .concat(['X-Goog-Resource-ID', 'X-Goog-Message-Number', 'X-Goog-Channel-Expiration', 'X-Goog-Resource-URI'].map((name) => ({ name, in: 'header', required: false, schema: str() }))),
      responses: { 200: json(obj({ received: { const: true } }, ['received'])), 400: E[400], 401: err('Wrong channel token (`UNAUTHORIZED`)'), 404: err('Unknown or expired channel (`NOT_FOUND`)'), 413: E[413], 500: E[500] },
    }),
  },
  '/webhooks/discord': {
    post: publicOp({
      tags: ['webhooks'], summary: 'Discord interactions: Ed25519 over X-Signature-Timestamp + body (DISCORD_PUBLIC_KEY); PING answers {"type":1}',
      description: 'Every other interaction is recorded in the inbox and answered in full (nothing follows up later): a command or a modal submit with an ephemeral message (type 4), a component with an acknowledgement that changes nothing (type 6), autocomplete with an empty list of choices (type 8).',
      parameters: ['X-Signature-Ed25519', 'X-Signature-Timestamp'].map((name) => ({ name, in: 'header', required: true, schema: str() })),
      requestBody: body({ type: 'object' }),
      responses: { 200: json(obj({ type: { enum: [1, 4, 6, 8] }, data: { type: 'object' } }, ['type'])), 400: E[400], 401: err('Bad signature (`INVALID_SIGNATURE`)'), 413: E[413], 503: err('No DISCORD_PUBLIC_KEY (`WEBHOOK_NOT_CONFIGURED`)') },
    }),
  },
  '/webhooks/xero': {
    post: publicOp({
      tags: ['webhooks'], summary: 'Xero: base64 HMAC-SHA256 of the body (XERO_WEBHOOK_KEY); the intent-to-receive check wants empty bodies',
      parameters: [{ name: 'x-xero-signature', in: 'header', required: true, schema: str() }],
      requestBody: body({ type: 'object' }),
      responses: { 200: { description: 'Valid signature (empty body)' }, 400: { description: 'Not JSON (empty body)' }, 401: { description: 'Bad signature (empty body)' }, 413: E[413], 503: err('No XERO_WEBHOOK_KEY (`WEBHOOK_NOT_CONFIGURED`)') },
    }),
  },
  '/webhooks/hubspot': {
    post: publicOp({
      tags: ['webhooks'], summary: 'HubSpot: signature v3 (method + URI + body + timestamp, HUBSPOT_CLIENT_SECRET), 5-minute window; events deduplicated by eventId',
      parameters: ['X-HubSpot-Signature-v3', 'X-HubSpot-Request-Timestamp'].map((name) => ({ name, in: 'header', required: true, schema: str() })),
      requestBody: body({ type: 'array', items: { type: 'object' } }),
      responses: { 200: json(obj({ received: { const: true }, events: { type: 'integer' }, duplicate: { type: 'boolean' } }, ['received', 'events'])), 400: E[400], 401: err('Bad or stale signature (`INVALID_SIGNATURE`)'), 413: E[413], 503: err('No HUBSPOT_CLIENT_SECRET (`WEBHOOK_NOT_CONFIGURED`)') },
    }),
  },
  '/webhooks/notion': {
    post: publicOp({
      tags: ['webhooks'], summary: 'Notion: a verification request ({"verification_token"} alone) is held pending while an admin\'s verification window is open; events need X-Notion-Signature made with the confirmed token',
      parameters: [{ name: 'X-Notion-Signature', in: 'header', schema: str() }],
      requestBody: body({ type: 'object' }),
      responses: {
        200: json(obj({ received: { const: true }, verification: { type: 'boolean' }, duplicate: { type: 'boolean' } }, ['received'])),
        400: E[400], 401: err('Bad signature (`INVALID_SIGNATURE`)'),
        409: err('A verification request with no window open (`VERIFICATION_WINDOW_CLOSED`), or the window already holds 20 tokens (`TOO_MANY_PENDING_TOKENS`); nothing is stored'), 413: E[413],
        503: err('No confirmed verification token (`WEBHOOK_NOT_CONFIGURED`), or no ENCRYPTION_KEY'),
      },
    }),
  },
  '/api/admin/webhooks/inbox': {
    get: admin({
      tags: ['webhooks'], summary: 'Accepted third-party deliveries, newest first (payloads are not kept)',
      parameters: [{ name: 'provider', in: 'query', schema: { enum: ['github', 'discord', 'xero', 'hubspot', 'notion', 'slack'] } }, ...listParams],
      responses: { 200: json(obj({ deliveries: { type: 'array', items: obj({ id: str(), provider: str(), deliveryId: str(), eventType: { type: ['string', 'null'] }, receivedAt: time }, ['id', 'provider', 'deliveryId', 'receivedAt']) }, hasMore: { type: 'boolean' }, cursor: str() }, ['deliveries', 'hasMore'])), ...errors(400) },
    }),
  },
  '/api/admin/webhooks/notion/verification': {
    post: admin({
      tags: ['webhooks'], summary: 'Open (or restart) a 15-minute window in which Notion\'s verification request is accepted; tokens of an earlier window are dropped',
      responses: { 200: json(obj({ windowEndsAt: time }, ['windowEndsAt'])) },
    }),
    get: admin({
      tags: ['webhooks'], summary: 'The tokens received in the window (to paste into Notion, which accepts only its own), the window\'s end and when the token in use was confirmed (never its value)',
      responses: {
        200: json(obj({
          pending: { type: 'array', items: obj({ token: str(), receivedAt: time }, ['token', 'receivedAt']) },
          windowEndsAt: { ...time, type: ['string', 'null'] }, confirmedAt: { ...time, type: ['string', 'null'] },
        }, ['pending', 'windowEndsAt', 'confirmedAt'])),
        ...errors(503),
      },
    }),
  },
  '/api/admin/webhooks/notion/verification/confirm': {
    post: admin({
      tags: ['webhooks'], summary: 'Confirm the pending token Notion accepted: events are verified with it from now on; the window closes and the other pending tokens are dropped',
      requestBody: body(obj({ token: str({ minLength: 1, maxLength: 500 }) }, ['token'])),
      responses: { 200: json(obj({ ok: { const: true }, confirmedAt: time }, ['ok', 'confirmedAt'])), ...errors(400, 404, 503) },
    }),
  },
  '/api/admin/webhooks/notion/verification-token': {
    delete: admin({ tags: ['webhooks'], summary: 'Forget the confirmed Notion token (events answer 503 until another is confirmed)', responses: { 200: ok, ...errors(404) } }),
  },
  '/api/webhook-triggers': {
    post: user({
      tags: ['webhooks'], summary: 'Create a webhook trigger: deliveries to /webhooks/<path>, signed with the secret (shown once), become prompts',
      requestBody: body(obj({
        path: str({ minLength: 1, maxLength: 200, description: '[a-z0-9-]+(/[a-z0-9-]+)*, not under github, discord, xero, hubspot, notion or slack' }),
        method: { enum: ['POST', 'PUT', 'PATCH'] }, sessionId: str({ description: 'default: the owner\'s orchestrator' }),
        promptTemplate: str({ minLength: 1, maxLength: 8192, description: 'at most 8 KB (8,192 bytes); {{payload.a.b}}, {{payload}} and {{query.x}} are filled in ({{query.x}} only with signQuery)' }),
        signQuery: { type: 'boolean', description: 'default false. true: deliveries sign the request target too (sha256=<hex HMAC-SHA256(secret, "/webhooks/<path>?<query>" + "\\n" + body)>), which a template needs to read {{query.*}}' },
      }, ['path', 'promptTemplate'])),
      responses: { 201: json(obj({ trigger: ref('WebhookTrigger'), secret: str() }, ['trigger', 'secret']), 'Created'), ...errors(400, 404, 409, 503) },
    }),
    get: user({ tags: ['webhooks'], summary: 'The caller\'s webhook triggers', responses: { 200: json(obj({ triggers: { type: 'array', items: ref('WebhookTrigger') } }, ['triggers'])) } }),
  },
  '/api/webhook-triggers/{id}': {
    parameters: [pathParam('id', 'Trigger id')],
    delete: user({ tags: ['webhooks'], summary: 'Delete a webhook trigger', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
  '/webhooks/{path}': {
    parameters: [{ name: 'path', in: 'path', required: true, schema: str(), description: 'a trigger\'s path (may contain /)' }],
    ...Object.fromEntries(['post', 'put', 'patch'].map((m) => [m, publicOp({
      tags: ['webhooks'], summary: 'A delivery to a user webhook trigger (X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, body)>, or X-Hub-Signature-256; with signQuery the HMAC is over the request target, a newline, then the body)',
      description: 'Once per delivery: a delivery whose body (SHA-256) or whose X-Webhook-Id / X-GitHub-Delivery was seen before for the trigger is a duplicate. With signQuery, the signed target is the path and query exactly as sent (`/webhooks/<path>?<query>`, percent-encoded); query values fill {{query.*}} only then.',
      requestBody: body({}, false),
      responses: {
        202: json(obj({ received: { const: true }, promptId: { type: ['string', 'null'] } }, ['received']), 'Accepted: a prompt was queued'),
        200: json(obj({ received: { const: true }, duplicate: { const: true } }, ['received', 'duplicate']), 'A repeated delivery'),
        ...errors(400, 404, 500, 502), 401: err('Bad signature (`INVALID_SIGNATURE`)'), 405: err('Wrong method for this trigger (`METHOD_NOT_ALLOWED`)'),
        413: err('Body over 1 MiB, or the template filled with it makes a prompt over 100,000 characters (`PAYLOAD_TOO_LARGE`; nothing is recorded, so the delivery may be sent again)'), 503: E[503],
      },
    })])),
  },
  '/api/me/telegram': {
    post: user({
      tags: ['telegram'], summary: 'Set up the caller\'s Telegram bot (getMe, authenticated webhook, commands)',
      requestBody: body(obj({ botToken: str({ description: '123456789:AA… from @BotFather' }) }, ['botToken'])),
      responses: {
        200: json(obj({
          config: ref('TelegramConfig'), webhookUrl: str(),
          pairingCode: str({ description: 'until paired: send "/start <code>" to the bot from your Telegram account (shown once)' }),
          pairingLink: str({ description: 'https://t.me/<bot>?start=<code>' }),
        }, ['config', 'webhookUrl'])),
        400: err('Malformed token (`VALIDATION_ERROR`) or rejected by Telegram (`INVALID_BOT_TOKEN`)'),
        502: err('Telegram refused the webhook (`UPSTREAM_ERROR`); nothing new is saved and a previous setup is marked inactive'),
        ...errors(503),
      },
    }),
    get: user({ tags: ['telegram'], summary: 'The caller\'s Telegram setup (never the token)', responses: { 200: json(obj({ config: { oneOf: [ref('TelegramConfig'), { type: 'null' }] } }, ['config'])) } }),
    delete: user({ tags: ['telegram'], summary: 'Disconnect: remove the webhook (best effort) and the setup', responses: { 200: json(ref('Success')) } }),
  },
  '/telegram/webhook/{userId}': {
    parameters: [pathParam('userId', 'The bot owner')],
    post: publicOp({
      tags: ['webhooks'], summary: 'Telegram updates for a user\'s bot (message: text, photo, voice, audio, image/audio documents, commands)',
      parameters: [{ name: 'X-Telegram-Bot-Api-Secret-Token', in: 'header', required: true, schema: str() }],
      requestBody: body(obj({ update_id: { type: 'integer', minimum: 0 }, message: { type: 'object' } }, ['update_id'])),
      responses: {
        200: json(obj({ ok: { const: true }, duplicate: { type: 'boolean' } }, ['ok'])),
        400: err('Not JSON or no update_id'),
        401: err('Missing or wrong secret token (`INVALID_SECRET`)'),
        404: err('No Telegram setup for this user'),
        500: E[500],
      },
    }),
  },
  '/api/slack/install': {
    get: admin({
      tags: ['slack'], summary: 'The URL that installs the Slack app in a workspace (scopes app_mentions:read, chat:write, im:history, im:read, im:write, users:read; a single-use, 10-minute state kept here)',
      responses: { 200: json(obj({ url: str({ format: 'uri' }) }, ['url'])), 503: err('SLACK_CLIENT_ID or SLACK_CLIENT_SECRET is not set (`SLACK_NOT_CONFIGURED`)') },
    }),
  },
  '/slack/oauth/callback': {
    get: publicOp({
      tags: ['slack'], summary: 'Slack install callback: oauth.v2.access, the bot token sealed per team',
      description: 'Redirects to `FRONTEND_URL/settings/slack?installed=<teamId>`, or to `FRONTEND_URL/settings/slack?error=<code>` with code one of missing_params, invalid_state, access_denied, token_exchange_failed, oauth_error. The state is single use.',
      parameters: ['code', 'state', 'error'].map((name) => ({ name, in: 'query', schema: str() })),
      responses: {
        302: { description: 'Redirect to the frontend (FRONTEND_URL, else the console)', headers: { Location: { schema: str() } } },
        500: E[500],
      },
    }),
  },
  '/api/slack/workspaces': {
    get: admin({
      tags: ['slack'], summary: 'Installed Slack workspaces, newest first (never a token)', parameters: listParams,
      responses: { 200: json(obj({ workspaces: { type: 'array', items: ref('SlackWorkspace') }, hasMore: { type: 'boolean' }, cursor: str() }, ['workspaces', 'hasMore'])), ...errors(400) },
    }),
  },
  '/api/slack/workspaces/{teamId}': {
    parameters: [pathParam('teamId', 'Slack team id')],
    delete: admin({ tags: ['slack'], summary: 'Remove an install: the bot token is revoked (best effort); its people\'s links and pending codes go too', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
  '/slack/events': {
    post: publicOp({
      tags: ['webhooks', 'slack'], summary: 'Slack Events API: X-Slack-Signature (v0, HMAC-SHA256 with SLACK_SIGNING_SECRET over v0:<timestamp>:<body>), 5-minute window',
      description: 'url_verification answers {challenge}. DMs to the bot and mentions are acknowledged at once and worked through the queue; an event_id seen before (Slack retries, X-Slack-Retry-Num) is acknowledged with duplicate: true and not acted on again. Bot messages and edits are ignored.',
      parameters: [
        { name: 'X-Slack-Signature', in: 'header', required: true, schema: str() },
        { name: 'X-Slack-Request-Timestamp', in: 'header', required: true, schema: str() },
        { name: 'X-Slack-Retry-Num', in: 'header', schema: str() },
      ],
      requestBody: body({ type: 'object' }),
      responses: {
        200: json({ oneOf: [obj({ challenge: str() }, ['challenge']), obj({ ok: { const: true }, duplicate: { type: 'boolean' } }, ['ok'])] }),
        400: E[400], 401: err('Bad or stale signature (`INVALID_SIGNATURE`)'), 413: E[413], 500: E[500],
        503: err('No SLACK_SIGNING_SECRET (`WEBHOOK_NOT_CONFIGURED`)'),
      },
    }),
  },
  '/api/me/slack': {
    get: user({ tags: ['slack'], summary: 'The caller\'s linked Slack accounts', responses: { 200: json(obj({ links: { type: 'array', items: ref('SlackLink') } }, ['links'])) } }),
  },
  '/api/me/slack/link': {
    post: user({
      tags: ['slack'], summary: 'Link the Slack account a one-time code was sent to (FRONTEND_URL/slack/link#code=…, valid 15 minutes, single use) to the caller',
      requestBody: body(obj({ code: str({ minLength: 1, maxLength: 200 }) }, ['code'])),
      responses: {
        201: json(obj({ link: ref('SlackLink') }, ['link']), 'Linked'),
        400: err('Malformed input (`VALIDATION_ERROR`), or an unknown, expired or used code (`INVALID_CODE`)'),
        409: err('That Slack account is linked to another user (`SLACK_USER_LINKED`)'),
        413: E[413],
      },
    }),
  },
  '/api/me/slack/{teamId}': {
    parameters: [pathParam('teamId', 'Slack team id')],
    delete: user({ tags: ['slack'], summary: 'Unlink the caller\'s Slack account in a workspace', responses: { 200: json(ref('Success')), ...errors(404) } }),
  },
  '/api/sessions/{id}/reply': {
    parameters: idParam,
    post: user({
      tags: ['telegram', 'slack'], summary: 'Send a reply from a session: to a Telegram chat through the owner\'s bot (Markdown → Telegram HTML, split under 4096), or into a Slack thread (Markdown → mrkdwn, chat.postMessage with thread_ts, split under 40,000). Body limit 16 MiB.',
      requestBody: body(obj({
        channelType: { enum: ['telegram', 'slack'] }, channelId: str({ description: 'Telegram chat id, or Slack <teamId>:<channelId>:<threadTs> (a conversation the caller talked to the bot from)' }), text: str({ maxLength: 100000 }),
        photo: obj({ data: str({ description: 'base64 or a data: URL' }), mimeType: { enum: ['image/png', 'image/jpeg', 'image/webp', 'image/gif'] } }, ['data', 'mimeType']),
        caption: str({ description: 'Markdown; over 1024 characters it follows as messages' }),
      }, ['channelType', 'channelId'])),
      responses: {
        202: json(obj({ delivered: { const: true }, parts: { type: 'integer' } }, ['delivered', 'parts']), 'Delivered'),
        409: err('Telegram is not set up (`TELEGRAM_NOT_CONFIGURED`), or the caller never talked to the Slack bot in that conversation (`SLACK_NOT_CONNECTED`)'),
        429: err('Too many failed authentications, or Slack asks to wait longer than 5 seconds (`RATE_LIMITED`, `Retry-After`)'),
        ...errors(400, 404, 413, 502),
      },
    }),
  },
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
  '/api/sessions/{id}/git-state': {
    ...sessionRead('A session\'s git state', obj({ gitState: { oneOf: [ref('GitState'), { type: 'null' }] } }, ['gitState'])),
    put: user({
      tags: ['sessions'], summary: 'The runner reports its branch, pull request and commit count (owner only)',
      description: 'A different `prNumber` than the linked one starts that PR\'s state afresh; GitHub deliveries then keep it current.',
      requestBody: body(obj({ branch: str({ minLength: 1, maxLength: 255 }), prNumber: { type: 'integer', minimum: 1 }, prUrl: str({ description: 'https URL; needs prNumber' }), commitCount: { type: 'integer', minimum: 0 } })),
      responses: { 200: json(obj({ gitState: ref('GitState') }, ['gitState'])), ...errors(400, 404), 409: err('The session is finished (`SESSION_FINISHED`)') },
    }),
  },
  '/api/sessions/{id}/children': sessionRead('Child sessions', obj({ sessions: { type: 'array', items: ref('Session') } }, ['sessions'])),
  '/api/sessions/{id}/messages': sessionLog('Messages the session received (oldest first)', 'messages', ref('Message')),
  '/api/sessions/{id}/queue': sessionLog('The prompt queue (in queue order, finished ones last; finished prompts are kept 30 days)', 'prompts', ref('QueuedPrompt')),
  '/api/sessions/{id}/events': sessionLog('Notifications and queue events (oldest first; kept 30 days)', 'events', obj({ id: str(), type: str(), data: {}, createdAt: time })),
  '/api/sessions/{id}/queue/{promptId}/heartbeat': {
    parameters: [...idParam, pathParam('promptId', 'Prompt id')],
    post: user({
      tags: ['runner'], summary: 'Renew the lease of a claimed prompt (15 minutes by default; without renewals it returns to the queue)',
      responses: { 200: json(obj({ ok: { const: true }, leaseUntil: time }, ['ok', 'leaseUntil'])), 409: err('The prompt is not being processed (`PROMPT_NOT_PROCESSING`)'), ...errors(404) },
    }),
  },
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
        200: json(obj({ success: { const: true }, reply: { type: 'object', description: 'when the prompt came from Telegram or Slack: {channelType, channelId, delivered, parts?, error?}' } }, ['success'])),
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
  '/auth/providers': {
    get: publicOp({
      tags: ['auth'], summary: 'The sign-in providers this deployment is configured for (the console offers only these)',
      responses: { 200: json(obj({ providers: { type: 'array', items: { enum: ['github', 'google'] } } }, ['providers'])) },
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
      requestBody: body(obj({
        name: str({ minLength: 1, maxLength: 100 }),
        expiresAt: { ...time, type: ['string', 'null'], description: 'Must be in the future. With a sign-in session: at most 90 days ahead (the default); null (no expiry) for admins only. With an API token that expires: no later than it (the default), never null' },
      }, ['name'])),
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
    description: 'Connects GitHub, Gmail, Google Calendar, Telegram and Slack to an AI-agent platform. ' +
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
      OrgSettings: obj({ name: str(), domainGatingEnabled: { type: 'boolean' }, allowedDomains: { type: 'array', items: str() }, emailAllowlistEnabled: { type: 'boolean' }, allowedEmails: { type: 'array', items: str() } }, ['name', 'domainGatingEnabled', 'allowedDomains', 'emailAllowlistEnabled', 'allowedEmails']),
      MaintenanceJob: obj({ name: str(), status: { enum: ['running', 'completed', 'failed'] }, phase: { type: ['string', 'null'] }, scanned: { type: 'integer' }, resealed: { type: 'integer' }, error: { type: ['string', 'null'] }, startedAt: str(), updatedAt: str(), finishedAt: { type: ['string', 'null'] } }, ['name', 'status', 'scanned', 'resealed', 'startedAt', 'updatedAt']),
      CustomProvider: obj({
        id: str(), providerId: str(), displayName: str(), baseUrl: str(), hasKey: { type: 'boolean' },
        models: { type: 'array', items: obj({ id: str(), name: str(), contextWindow: { type: 'integer' }, maxOutputTokens: { type: 'integer' } }, ['id']) },
        setBy: { type: ['string', 'null'] }, createdAt: time, updatedAt: time,
      }, ['id', 'providerId', 'displayName', 'baseUrl', 'hasKey', 'models', 'createdAt', 'updatedAt']),
      WebhookTrigger: obj({ id: str(), path: str(), url: str(), method: str(), sessionId: { type: ['string', 'null'] }, promptTemplate: str(), signQuery: { type: 'boolean' }, createdAt: time }, ['id', 'path', 'url', 'method', 'promptTemplate', 'signQuery', 'createdAt']),
      User: obj({ id: str(), email: str({ format: 'email' }), name: { type: ['string', 'null'] }, role: { enum: ['member', 'admin'] } }, ['id', 'email', 'name', 'role']),
      AuditEntry: obj({
        id: str(), createdAt: time, userId: str(),
        caller: obj({ type: { enum: ['api_token', 'session', 'oauth_client'] }, id: str() }, ['type', 'id']),
        via: { enum: ['rest', 'mcp'] }, integrationId: { type: ['string', 'null'] }, service: { type: ['string', 'null'] },
        action: str(), outcome: str({ description: 'ok, or the error code the run ended with' }), durationMs: { type: 'integer', minimum: 0 },
      }, ['id', 'createdAt', 'userId', 'caller', 'via', 'action', 'outcome', 'durationMs']),
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
        prCreatedAt: {}, prMergedAt: {}, sourcePrState: {}, sourcePrTitle: {}, sourcePrUrl: {}, agentAuthored: { type: 'boolean' }, updatedAt: time,
        repoVerified: { type: 'boolean', description: "GitHub showed the session owner's token this repository: only then do PR and push deliveries reach the session." },
        repoAccess: { description: 'verified, denied (GitHub refused the owner) or pending (no token yet or not checked; the PR reconciler checks again); null without a repository', oneOf: [{ enum: ['verified', 'denied', 'pending'] }, { type: 'null' }] },
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
      OrgRepo: { type: 'object', properties: {
        id: str(), orgId: str(), provider: str(), owner: str(), name: str(), fullName: str(), description: {}, defaultBranch: str(),
        language: {}, topics: { type: 'array', items: str() }, enabled: { type: 'boolean' }, personaId: {}, personaName: {}, createdAt: time, updatedAt: time,
      }, required: ['id', 'fullName', 'enabled', 'createdAt', 'updatedAt'] },
      Persona: obj({ id: str(), name: str(), slug: str(), description: {}, visibility: { enum: ['private', 'shared'] }, createdAt: time }, ['id', 'name', 'slug', 'visibility', 'createdAt']),
      TelegramConfig: obj({
        id: str(), userId: str(), botUsername: str(), botInfo: str({ description: 'JSON of getMe' }),
        webhookActive: { type: 'boolean' }, paired: { type: 'boolean', description: 'the bot answers only its paired owner' }, createdAt: time, updatedAt: time,
      }, ['id', 'userId', 'botUsername', 'botInfo', 'webhookActive', 'paired', 'createdAt', 'updatedAt']),
      IntegrationConfig: obj({
        syncFrequency: { enum: ['realtime', 'hourly', 'daily', 'manual'] }, entities: { type: 'array', items: str() },
        filters: {
          type: 'object', additionalProperties: false,
          description: 'What a sync takes, per service (a filter of another service, or of the wrong shape, is 400 `VALIDATION_ERROR` on `config.filters.<name>`); a run keeps the filters it started with',
          properties: {
            repositories: { type: 'array', minItems: 1, maxItems: 100, items: str({ pattern: '^[^/]+/[^/]+$' }), description: 'GitHub: only these repositories (owner/name) are synced' },
            labels: { type: 'array', minItems: 1, maxItems: 20, items: str({ minLength: 1, maxLength: 225 }), description: 'Gmail: only messages (and threads) carrying every one of these label ids' },
            after: str({ pattern: '^\\d{4}[-/]\\d{2}[-/]\\d{2}$', description: 'Gmail: only messages after this date (YYYY-MM-DD or YYYY/MM/DD; Gmail\'s after:)' }),
            calendars: { type: 'array', minItems: 1, maxItems: 50, items: str({ minLength: 1, maxLength: 255 }), description: 'Google Calendar: the events of these calendars, instead of the selected ones' },
          },
        },
      }),
      Integration: { type: 'object', properties: {
        id: str(), service: str(), status: { enum: ['pending', 'active', 'error', 'disconnected'] }, scope: { enum: ['user', 'org'] },
        config: ref('IntegrationConfig'), errorMessage: { type: ['string', 'null'] }, lastSyncedAt: { type: ['string', 'null'] },
        createdAt: time, updatedAt: time, owned: { type: 'boolean' },
        grantedScopes: { type: ['array', 'null'], items: str(), description: 'the scopes the provider granted when it was connected (its token answer\'s `scope`); null when the credentials were given without one (actions are then not checked against scopes)' },
        realtime: { ...obj({
          mode: { enum: ['push', 'poll'], description: 'push: provider notifications arrive (the hourly poll stays as the safety net); poll: only polling' },
          expiresAt: { ...time, description: 'when the earliest push subscription expires (renewed before)' },
          lastNotificationAt: { ...time, description: 'the last push notification received' },
          note: str({ description: 'why it polls, when it does (e.g. GMAIL_PUBSUB_TOPIC not set, calendars not yet synced)' }),
        }, ['mode']), description: 'how the integration learns of changes (contract §16)' },
        storage: { ...obj({
          bytes: { type: 'integer', description: 'the size of the integration\'s own database (its Durable Object)' },
          entities: { type: 'integer', description: 'live (not deleted) entities it holds' },
        }, ['bytes', 'entities']), description: 'only on GET /api/integrations/{id}' },
      }, required: ['id', 'service', 'status', 'scope', 'config', 'createdAt'] },
      IntegrationEvent: obj({
        id: str(), integrationId: str(), kind: { enum: ['connection_lost', 'connection_restored'] }, status: { enum: ['error', 'active'] },
        previousStatus: str(), code: { const: 'RECONNECT_REQUIRED' }, message: str(), createdAt: time,
        notifiedAt: { type: ['string', 'null'], description: 'when the owner\'s orchestrator was told (or found absent)' },
      }, ['id', 'integrationId', 'kind', 'status', 'previousStatus', 'createdAt', 'notifiedAt']),
      SyncRun: { type: 'object', properties: {
        id: str(), integrationId: str(), status: { enum: ['pending', 'running', 'completed', 'failed'] }, fullSync: { type: 'boolean' },
        progress: { type: 'integer' }, currentEntity: { type: ['string', 'null'] }, requestsMade: { type: 'integer' }, invocations: { type: 'integer' },
        resumeAt: { type: ['string', 'null'] }, startedAt: time, completedAt: { type: ['string', 'null'] },
        notes: { type: 'array', items: str(), description: 'e.g. an incremental checkpoint the provider no longer knew, and the full pass that followed' },
        lastError: { type: ['string', 'null'], description: 'the last transient failure (the run is retried with backoff)' },
        result: obj({ success: { type: 'boolean' }, recordsSynced: { type: 'integer' }, errors: { type: 'array' }, completedAt: time }),
      }, required: ['id', 'integrationId', 'status', 'progress', 'startedAt'] },
      SearchResult: obj({ type: str(), externalId: str(), title: str(), snippet: str({ description: 'the text around the match, each match wrapped in **' }), modifiedAt: time }, ['type', 'externalId', 'title', 'snippet', 'modifiedAt']),
      SearchResultAcross: obj({ integrationId: str(), type: str(), externalId: str(), title: str(), snippet: str({ description: 'the text around the match, each match wrapped in **' }), modifiedAt: time }, ['integrationId', 'type', 'externalId', 'title', 'snippet', 'modifiedAt']),
      ApiToken: obj({ id: str(), name: str(), prefix: str(), createdAt: time, lastUsedAt: time, expiresAt: time }, ['id', 'name', 'prefix', 'createdAt']),
      SlackWorkspace: obj({
        teamId: str(), teamName: { type: ['string', 'null'] }, botUserId: { type: ['string', 'null'] }, appId: { type: ['string', 'null'] },
        scopes: { type: 'array', items: str() }, installedBy: { type: ['string', 'null'], description: 'the admin who installed it' }, createdAt: time, updatedAt: time,
      }, ['teamId', 'teamName', 'botUserId', 'appId', 'scopes', 'installedBy', 'createdAt', 'updatedAt']),
      SlackLink: obj({
        teamId: str(), teamName: { type: ['string', 'null'] }, slackUserId: str(), slackUserName: { type: ['string', 'null'] }, createdAt: time,
      }, ['teamId', 'teamName', 'slackUserId', 'slackUserName', 'createdAt']),
      CredentialMeta: obj({ service: str(), scopes: { type: 'array', items: str() }, createdAt: time, expiresAt: time }, ['service', 'scopes', 'createdAt']),
    },
  },
  paths,
};

// Minified: the document is embedded in the Worker, and every byte is upload size.
const text = JSON.stringify(doc) + '\n';
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
