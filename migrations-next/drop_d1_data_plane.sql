-- The next release's migration (README, "Data plane"): once every integration's data has been
-- copied into its object (`GET /api/admin/data-plane` answers `{"remaining": 0}`), the tables
-- of before the data plane are dropped. Nothing reads them then. Move this file into
-- migrations/ to apply it with the next deploy.
DROP TRIGGER IF EXISTS synced_entities_search_insert;
DROP TRIGGER IF EXISTS synced_entities_search_update;
DROP TRIGGER IF EXISTS synced_entities_search_delete;
DROP TABLE IF EXISTS entity_search;
DROP TABLE IF EXISTS entity_search_docs;
DROP VIEW IF EXISTS entity_search_text;
DROP TABLE IF EXISTS sync_checkpoints;
DROP TABLE IF EXISTS synced_entities;
