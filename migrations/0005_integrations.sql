-- The generic integration framework: connections, sync runs, persisted entities, checkpoints.

CREATE TABLE integrations (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  service TEXT NOT NULL,
  config TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'error', 'disconnected')),
  error_message TEXT,
  last_synced_at TEXT,
  scope TEXT NOT NULL DEFAULT 'user' CHECK (scope IN ('user', 'org')),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  UNIQUE (user_id, service)
);
CREATE INDEX idx_integrations_user ON integrations(user_id, created_at DESC);
CREATE INDEX idx_integrations_scope ON integrations(scope, created_at DESC);
CREATE INDEX idx_integrations_service ON integrations(service, status);

-- One row per run. `state` is the run's resumable position (JSON); `resume_at` defers a
-- continuation (request budget spent, or an upstream rate limit) to a later invocation.
CREATE TABLE sync_logs (
  id TEXT PRIMARY KEY,
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed')),
  full_sync INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT '{}',
  current_entity TEXT,
  records_synced INTEGER NOT NULL DEFAULT 0,
  requests_made INTEGER NOT NULL DEFAULT 0,
  invocations INTEGER NOT NULL DEFAULT 0,
  errors TEXT,
  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  heartbeat_at TEXT,
  resume_at TEXT,
  completed_at TEXT
);
CREATE INDEX idx_sync_logs_integration ON sync_logs(integration_id, started_at DESC);
-- One unfinished run per integration: a second start is a 409, not a second run.
CREATE UNIQUE INDEX idx_sync_logs_one_active ON sync_logs(integration_id) WHERE status IN ('pending', 'running');
CREATE INDEX idx_sync_logs_resume ON sync_logs(status, resume_at);

CREATE TABLE synced_entities (
  id TEXT PRIMARY KEY,
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  entity_type TEXT NOT NULL,
  external_id TEXT NOT NULL,
  data TEXT NOT NULL,
  first_seen_at TEXT NOT NULL,
  last_modified_at TEXT NOT NULL,
  synced_at TEXT NOT NULL,
  deleted_at TEXT,
  seen_run TEXT,
  UNIQUE (integration_id, entity_type, external_id)
);
CREATE INDEX idx_synced_entities_modified ON synced_entities(integration_id, entity_type, last_modified_at);

-- Where the next incremental run of an entity type starts.
CREATE TABLE sync_checkpoints (
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  entity_type TEXT NOT NULL,
  cursor TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (integration_id, entity_type)
);
