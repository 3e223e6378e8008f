-- Custom LLM providers (admin), the third-party webhook inbox, webhook secrets the service
-- learns at run time (Notion's verification token), and user webhook triggers.

CREATE TABLE custom_providers (
  id TEXT PRIMARY KEY,
  provider_id TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  base_url TEXT NOT NULL,
  -- Sealed by the credential module, bound to the provider id; NULL = no key.
  encrypted_key TEXT,
  models TEXT NOT NULL DEFAULT '[]',
  set_by TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Every accepted third-party delivery, once (the unique key is the deduplication); payloads
-- are not kept.
CREATE TABLE webhook_inbox (
  id TEXT PRIMARY KEY,
  provider TEXT NOT NULL,
  delivery_id TEXT NOT NULL,
  event_type TEXT,
  received_at TEXT NOT NULL,
  UNIQUE (provider, delivery_id)
);
CREATE INDEX idx_webhook_inbox_received ON webhook_inbox(received_at DESC, id DESC);
CREATE INDEX idx_webhook_inbox_provider ON webhook_inbox(provider, received_at DESC, id DESC);

CREATE TABLE webhook_secrets (
  provider TEXT PRIMARY KEY,
  sealed TEXT NOT NULL,
  -- When an admin was shown it (it is shown once).
  shown_at TEXT,
  created_at TEXT NOT NULL
);

CREATE TABLE webhook_triggers (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  path TEXT NOT NULL UNIQUE,
  method TEXT NOT NULL DEFAULT 'POST',
  session_id TEXT REFERENCES sessions(id) ON DELETE SET NULL,
  prompt_template TEXT NOT NULL,
  secret_sealed TEXT NOT NULL,
  created_at TEXT NOT NULL,
  last_delivery_at TEXT
);
CREATE INDEX idx_webhook_triggers_user ON webhook_triggers(user_id, created_at DESC, id DESC);
