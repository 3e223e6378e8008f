-- The data plane (issue 25): each integration's synced entities, their search index and its
-- checkpoints move out of this database into a SQLite-backed Durable Object per integration
-- (`IntegrationData`). D1 keeps the registry: integrations, runs and their leases, deliveries.

-- The fencing epoch: every claim of any run of an integration takes the next number, and the
-- integration's object refuses a commit older than one it accepted.
ALTER TABLE integrations ADD COLUMN sync_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_logs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;

-- Where an integration's data is read from: 'object', or 'd1' for data kept here before this
-- migration until the queue has copied it into the object (then 'object'). New integrations
-- start in their object.
ALTER TABLE integrations ADD COLUMN data_home TEXT NOT NULL DEFAULT 'object';
-- The copy's position (the last entity copied) and when a step of it last ran.
ALTER TABLE integrations ADD COLUMN data_move_cursor TEXT;
ALTER TABLE integrations ADD COLUMN data_move_at TEXT;
UPDATE integrations SET data_home = 'd1'
 WHERE EXISTS (SELECT 1 FROM synced_entities e WHERE e.integration_id = integrations.id)
    OR EXISTS (SELECT 1 FROM sync_checkpoints c WHERE c.integration_id = integrations.id);
CREATE INDEX idx_integrations_data_home ON integrations(data_home) WHERE data_home <> 'object';

-- Which integrations hold which parent entity (a GitHub repository by its id, a calendar): a
-- webhook delivery finds the integrations it concerns here, without asking every object.
-- Kept by each sync when it walks the parents. `verified_at`: when the owner's credentials last
-- showed the parent to us (a sync that listed it, or the daily re-check); deliveries reach only
-- integrations verified within a day, so one whose owner lost access stops receiving its data.
CREATE TABLE integration_holders (
  integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  holder_type TEXT NOT NULL,
  holder_key TEXT NOT NULL,
  verified_at TEXT,
  -- When the re-check last took it (so two runs do not check the same one).
  checked_at TEXT,
  PRIMARY KEY (integration_id, holder_type, holder_key)
);
CREATE INDEX idx_integration_holders_key ON integration_holders(holder_type, holder_key);
CREATE INDEX idx_integration_holders_verified ON integration_holders(verified_at);
-- The parents synced before this migration (the services' parent entity types).
INSERT INTO integration_holders (integration_id, holder_type, holder_key)
  SELECT integration_id, entity_type, external_id FROM synced_entities
   WHERE entity_type IN ('repositories', 'calendars') AND deleted_at IS NULL
  ON CONFLICT DO NOTHING;
