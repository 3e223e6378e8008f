-- Realtime integrations (issue 29, contract §16): push subscriptions with polling as the
-- safety net, and the record of connection health.

-- One row per integration whose syncFrequency is "realtime": how it learns of changes now
-- (`push`, or `poll` with the reason in `note`), when its subscriptions expire, when the
-- last notification arrived, and when the cron looks at it again (renewals, calendars that
-- joined or left the sync). `resync_at`: a notification came while a run was already
-- running; the cron starts one more incremental run once it has finished.
CREATE TABLE realtime_state (
  integration_id TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
  mode TEXT NOT NULL DEFAULT 'poll',
  account TEXT,
  expires_at TEXT,
  last_notification_at TEXT,
  next_check_at TEXT NOT NULL,
  resync_at TEXT,
  note TEXT,
  -- The worker's public origin when realtime was turned on (PUBLIC_URL, else the request's):
  -- where Google and GitHub deliver.
  origin TEXT,
  updated_at TEXT NOT NULL
);
CREATE INDEX idx_realtime_state_check ON realtime_state(next_check_at);
CREATE INDEX idx_realtime_state_account ON realtime_state(account);

-- The provider-side subscriptions themselves: a Gmail watch (resource = the mailbox), a
-- Calendar channel (id = the random channel id, resource = the calendar, resource_id =
-- Google's resourceId for channels.stop, token_hash = SHA-256 of the channel's secret), a
-- GitHub repository webhook (resource = owner/name, resource_id = the hook id).
CREATE TABLE realtime_watches (
  id TEXT PRIMARY KEY,
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  resource TEXT NOT NULL,
  resource_id TEXT,
  token_hash TEXT,
  expires_at TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX idx_realtime_watches_integration ON realtime_watches(integration_id, kind, resource);

-- Connection health: every change of an integration's status to `error` or from `error` back
-- to `active`, whichever code path made it (the trigger below sees them all), listed at
-- GET /api/integrations/:id/events and told to the owner's orchestrator (`notified_at`).
CREATE TABLE integration_events (
  id TEXT PRIMARY KEY,
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  previous_status TEXT NOT NULL,
  code TEXT,
  message TEXT,
  created_at TEXT NOT NULL,
  notified_at TEXT,
  notify_result TEXT
);
CREATE INDEX idx_integration_events_list ON integration_events(integration_id, created_at DESC, id DESC);
CREATE INDEX idx_integration_events_unnotified ON integration_events(created_at) WHERE notified_at IS NULL;

CREATE TRIGGER integration_health_event AFTER UPDATE OF status ON integrations
WHEN OLD.status <> NEW.status AND (NEW.status = 'error' OR (OLD.status = 'error' AND NEW.status = 'active'))
BEGIN
  INSERT INTO integration_events (id, integration_id, user_id, kind, status, previous_status, code, message, created_at)
  VALUES (
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-'
      || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
    NEW.id, NEW.user_id,
    CASE WHEN NEW.status = 'error' THEN 'connection_lost' ELSE 'connection_restored' END,
    NEW.status, OLD.status,
    CASE WHEN NEW.status = 'error' THEN 'RECONNECT_REQUIRED' ELSE NULL END,
    CASE WHEN NEW.status = 'error' THEN NEW.error_message ELSE NULL END,
    strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
  );
END;
