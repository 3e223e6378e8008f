-- Full-text search over synced entities (contract §11): an FTS5 index kept current by
-- triggers on `synced_entities`, so every upsert, soft deletion and purge changes the index in
-- the same statement (and so in the same D1 batch) as the entity itself: no drift.
--
-- What is searchable is read from an entity's stored JSON by field name, for every service
-- alike (no service is named here):
--   title: the first non-empty of title, subject, summary, full_name, the first line of
--          message, name (issue/PR titles, mail subjects, event summaries, repository names,
--          commit subjects, labels and calendars);
--   body:  from (mail senders), description, location, body (or snippet when there is no
--          body), and message (commit messages); at most 32,768 characters are indexed.
-- Deleted entities (deleted_at set) and entities with neither are not indexed.

-- The searchable text of each entity (\x02 and \x03 are the search's highlight markers).
CREATE VIEW entity_search_text AS
SELECT id, deleted_at,
       'i' || replace(integration_id, '-', '') AS k,
       substr(trim(replace(replace(COALESCE(
         NULLIF(CAST(json_extract(j, '$.title') AS TEXT), ''),
         NULLIF(CAST(json_extract(j, '$.subject') AS TEXT), ''),
         NULLIF(CAST(json_extract(j, '$.summary') AS TEXT), ''),
         NULLIF(CAST(json_extract(j, '$.full_name') AS TEXT), ''),
         NULLIF(substr(CAST(json_extract(j, '$.message') AS TEXT), 1,
                       instr(CAST(json_extract(j, '$.message') AS TEXT) || char(10), char(10)) - 1), ''),
         NULLIF(CAST(json_extract(j, '$.name') AS TEXT), ''),
         ''), char(2), ''), char(3), '')), 1, 1000) AS title,
       substr(trim(replace(replace(
         COALESCE(CAST(json_extract(j, '$.from') AS TEXT) || ' ', '') ||
         COALESCE(CAST(json_extract(j, '$.description') AS TEXT) || ' ', '') ||
         COALESCE(CAST(json_extract(j, '$.location') AS TEXT) || ' ', '') ||
         COALESCE(NULLIF(CAST(json_extract(j, '$.body') AS TEXT), '') || ' ', CAST(json_extract(j, '$.snippet') AS TEXT) || ' ', '') ||
         COALESCE(CAST(json_extract(j, '$.message') AS TEXT), ''),
         char(2), ''), char(3), '')), 1, 32768) AS body
  FROM (SELECT id, deleted_at, integration_id,
               CASE WHEN NOT json_valid(data) THEN '{}' WHEN json_type(data) = 'object' THEN data ELSE '{}' END AS j
          FROM synced_entities);

-- `k` is the integration as one token (`i` + its id without dashes): every search is
-- restricted to the integrations the caller may read inside the full-text query itself.
CREATE VIRTUAL TABLE entity_search USING fts5(k, title, body, tokenize = 'unicode61 remove_diacritics 2');

-- The index's rowid of each entity (an INTEGER PRIMARY KEY, stable across VACUUM and
-- export/import, unlike the implicit rowid of `synced_entities`).
CREATE TABLE entity_search_docs (
  doc INTEGER PRIMARY KEY,
  entity_id TEXT NOT NULL UNIQUE
);

CREATE TRIGGER synced_entities_search_insert AFTER INSERT ON synced_entities
BEGIN
  INSERT INTO entity_search_docs (entity_id)
    SELECT new.id WHERE NOT EXISTS (SELECT 1 FROM entity_search_docs WHERE entity_id = new.id);
  DELETE FROM entity_search WHERE rowid = (SELECT doc FROM entity_search_docs WHERE entity_id = new.id);
  INSERT INTO entity_search (rowid, k, title, body)
    SELECT d.doc, t.k, t.title, t.body
      FROM entity_search_text t JOIN entity_search_docs d ON d.entity_id = t.id
     WHERE t.id = new.id AND t.deleted_at IS NULL AND (t.title <> '' OR t.body <> '');
END;

-- Upserts set `data` and `deleted_at` on every run; only a real change is re-indexed. (No
-- `INSERT OR IGNORE` in these bodies: an upsert's own ON CONFLICT clause would override it.)
CREATE TRIGGER synced_entities_search_update AFTER UPDATE OF data, deleted_at ON synced_entities
WHEN old.data IS NOT new.data OR (old.deleted_at IS NULL) <> (new.deleted_at IS NULL)
BEGIN
  INSERT INTO entity_search_docs (entity_id)
    SELECT new.id WHERE NOT EXISTS (SELECT 1 FROM entity_search_docs WHERE entity_id = new.id);
  DELETE FROM entity_search WHERE rowid = (SELECT doc FROM entity_search_docs WHERE entity_id = new.id);
  INSERT INTO entity_search (rowid, k, title, body)
    SELECT d.doc, t.k, t.title, t.body
      FROM entity_search_text t JOIN entity_search_docs d ON d.entity_id = t.id
     WHERE t.id = new.id AND t.deleted_at IS NULL AND (t.title <> '' OR t.body <> '');
END;

-- Purges, and the cascade when an integration or its user is deleted.
CREATE TRIGGER synced_entities_search_delete AFTER DELETE ON synced_entities
BEGIN
  DELETE FROM entity_search WHERE rowid = (SELECT doc FROM entity_search_docs WHERE entity_id = old.id);
  DELETE FROM entity_search_docs WHERE entity_id = old.id;
END;

-- The entities synced before this migration.
INSERT INTO entity_search_docs (entity_id) SELECT id FROM synced_entities;
INSERT INTO entity_search (rowid, k, title, body)
  SELECT d.doc, t.k, t.title, t.body
    FROM entity_search_text t JOIN entity_search_docs d ON d.entity_id = t.id
   WHERE t.deleted_at IS NULL AND (t.title <> '' OR t.body <> '');
