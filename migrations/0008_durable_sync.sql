-- Durable background work (issue 11): sync runs driven by a queue under an expiring lease,
-- per-parent checkpoints, integration credentials under a key of their own, and an outbox for
-- webhook side effects.

-- Integration credentials live in API_KEYS under `integration:<id>`; rows created before
-- this migration still have theirs under the bare service name and are moved on first use.
ALTER TABLE integrations ADD COLUMN credentials_legacy INTEGER NOT NULL DEFAULT 0;
UPDATE integrations SET credentials_legacy = 1;
-- Scheduled integrations get one full (deletion-detecting) run a day.
ALTER TABLE integrations ADD COLUMN last_full_sync_at TEXT;

-- The lease: one worker per run. `lease_owner` is the queue message that holds it (a
-- redelivered message takes its own lease back at once); others wait for `lease_until`.
ALTER TABLE sync_logs ADD COLUMN lease_owner TEXT;
ALTER TABLE sync_logs ADD COLUMN lease_until TEXT;
-- The last transient failure (the run is retried with backoff; the dead-letter queue fails it
-- with this reason) and notes such as "checkpoint expired; full run".
ALTER TABLE sync_logs ADD COLUMN last_error TEXT;
ALTER TABLE sync_logs ADD COLUMN notes TEXT;
-- Consecutive failed slices (reset by every committed page): the retry backoff's exponent.
ALTER TABLE sync_logs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_sync_logs_lease ON sync_logs(status, lease_until);
CREATE INDEX idx_sync_logs_completed ON sync_logs(completed_at) WHERE completed_at IS NOT NULL;

-- Entities remember their parent (e.g. the repository of an issue) so a full pass over one
-- parent can mark exactly that parent's missing entities as deleted.
ALTER TABLE synced_entities ADD COLUMN parent TEXT NOT NULL DEFAULT '';
UPDATE synced_entities SET parent = COALESCE(json_extract(data, '$.repository'), '')
 WHERE json_extract(data, '$.repository') IS NOT NULL;
CREATE INDEX idx_synced_entities_parent ON synced_entities(integration_id, entity_type, parent);
CREATE INDEX idx_synced_entities_deleted ON synced_entities(deleted_at) WHERE deleted_at IS NOT NULL;

-- Checkpoints per parent ('' for entity types without one); `cursor` is the service's own
-- checkpoint text (a timestamp, a Gmail historyId, a Calendar syncToken).
CREATE TABLE sync_checkpoints_v2 (
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  entity_type TEXT NOT NULL,
  parent TEXT NOT NULL DEFAULT '',
  cursor TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (integration_id, entity_type, parent)
);
INSERT INTO sync_checkpoints_v2 (integration_id, entity_type, parent, cursor, updated_at)
  SELECT integration_id, entity_type, '', COALESCE(json_extract(cursor, '$.since'), cursor), updated_at FROM sync_checkpoints;
DROP TABLE sync_checkpoints;
ALTER TABLE sync_checkpoints_v2 RENAME TO sync_checkpoints;

-- Side effects recorded in the same D1 batch as the change that causes them, then delivered
-- through the queue; the cron re-enqueues rows a lost message left behind.
CREATE TABLE outbox (
  id TEXT PRIMARY KEY,
  batch TEXT NOT NULL,
  kind TEXT NOT NULL,
  target TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_outbox_batch ON outbox(batch);
CREATE INDEX idx_outbox_created ON outbox(created_at);
