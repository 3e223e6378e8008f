//! The data plane: each integration's synced entities, their full-text index and its sync
//! checkpoints live in a SQLite-backed Durable Object of their own (`IntegrationData`, binding
//! `INTEGRATION_DATA`, named by the integration id), not in the D1 database every request shares.
//! This file is the Worker ↔ object protocol (one POST JSON endpoint per operation, typed both
//! ways) and its client; the object itself is `integration_data_do.rs`.
//!
//! A sync page is committed in one call with the run's lease epoch as a fencing token: the
//! object refuses an epoch older than the newest it accepted, so a slice that lost its lease can
//! never write. Items carry their modification time and an older version never overwrites a
//! newer one, so a page applied twice (a retried slice, a webhook racing a run) leaves one state.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Env, Method};

use super::service::{Item, Parent};
use crate::do_client::{self, DoResponse};
use crate::http::{ApiError, ApiResult};

pub const BINDING: &str = "INTEGRATION_DATA";

pub const COMMIT: &str = "/commit";
pub const START: &str = "/start";
pub const UPSERT: &str = "/upsert";
pub const IMPORT: &str = "/import";
pub const ENTITIES: &str = "/entities";
pub const SEARCH: &str = "/search";
pub const STATS: &str = "/stats";
pub const DROP: &str = "/drop";
pub const FORGET: &str = "/forget";

/// An entity on the wire: `d` is its data (borrowed JSON when sent, raw JSON text when received,
/// so the object stores it without building a tree).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireItem<D> {
    pub e: String,
    pub d: D,
    /// The service's last-modified time (ISO); `""` when it has none.
    #[serde(default)]
    pub m: String,
    /// The parent's key (`""` when there is none).
    #[serde(default)]
    pub p: String,
    /// A deletion: the entity is marked deleted (its data is not changed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub x: bool,
}

impl<'a> WireItem<&'a Value> {
    pub fn of(i: &'a Item) -> Self {
        WireItem { e: i.external_id.clone(), d: &i.data, m: i.modified_at.clone(), p: i.parent.clone(), x: i.deleted }
    }
}

/// Received items: the data stays JSON text.
pub type RawItem = WireItem<Box<serde_json::value::RawValue>>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub parent: String,
    pub cursor: String,
}

/// `POST /commit`: one sync page, applied atomically.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitRequest<D> {
    pub run: String,
    /// The run's lease epoch (the fencing token).
    pub epoch: i64,
    pub entity: String,
    pub items: Vec<WireItem<D>>,
    /// The checkpoint to store when a parent's pass ended.
    pub checkpoint: Option<Checkpoint>,
    /// A full pass over this parent ended: its entities not seen by this run are deleted.
    pub sweep_parent: Option<String>,
    /// A full run ended this entity type: entities under parents no longer walked are deleted.
    pub sweep_orphans: Option<Vec<String>>,
    pub now: String,
}

/// The answer to a write (commit, upsert, import) that was applied.
#[derive(Debug, Serialize, Deserialize)]
pub struct Committed {}

/// `POST /start`: where an entity type's pass starts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    pub entity: String,
    pub parent: Option<ParentSpec>,
}

/// The parent an entity type iterates over (the service's [`Parent`], owned).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentSpec {
    pub entity: String,
    pub key: String,
    pub only_if: Option<String>,
}

impl From<Parent> for ParentSpec {
    fn from(p: Parent) -> Self {
        ParentSpec { entity: p.entity.into(), key: p.key.into(), only_if: p.only_if.map(str::to_string) }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Started {
    pub checkpoints: Vec<Checkpoint>,
    /// The parents walked, in external-id order (`None` for an entity type without parents).
    pub parents: Option<Vec<ParentRow>>,
}

/// A parent entity: its key (what its children are walked by) and its external id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParentRow {
    pub k: Option<String>,
    pub id: String,
}

/// `POST /upsert`: items stored outside a run (fetch, actions, webhook deliveries).
#[derive(Debug, Serialize, Deserialize)]
pub struct UpsertRequest<D> {
    pub groups: Vec<UpsertGroup<D>>,
    pub now: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UpsertGroup<D> {
    pub entity: String,
    pub items: Vec<WireItem<D>>,
}

/// `POST /import`: rows copied from the D1 tables of before the data plane (the move).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    pub rows: Vec<ImportRow>,
    pub checkpoints: Vec<ImportCheckpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportRow {
    pub entity_type: String,
    pub external_id: String,
    /// JSON text, as D1 kept it.
    pub data: String,
    pub first_seen_at: String,
    pub last_modified_at: String,
    pub synced_at: String,
    pub deleted_at: Option<String>,
    pub seen_run: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportCheckpoint {
    pub entity_type: String,
    pub parent: String,
    pub cursor: String,
    pub updated_at: String,
}

/// `POST /entities`: one page of an entity type in `external_id` order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitiesRequest {
    pub entity: String,
    pub after: String,
    pub modified_after: Option<String>,
    pub include_deleted: bool,
    /// Rows to return (the caller asks one more than it shows, to know whether more exist).
    pub limit: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EntityRow {
    pub external_id: String,
    pub data: String,
    pub first_seen_at: String,
    pub last_modified_at: String,
    pub deleted_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EntitiesPage {
    pub rows: Vec<EntityRow>,
}

/// `POST /search`: the best matches of an FTS5 expression (built by `search::fts_query`, never
/// the user's text), best first, after a position.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    pub query: String,
    pub entity_type: Option<String>,
    pub limit: u32,
    pub after: Option<SearchAfter>,
}

/// Where a page of results starts: after rank `rank` (lower is better, as bm25 answers);
/// with `ties`, equal ranks count too, those after `key` when it is given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchAfter {
    pub rank: f64,
    pub ties: bool,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    pub entity_type: String,
    pub external_id: String,
    pub last_modified_at: String,
    pub title: Option<String>,
    pub body_snippet: Option<String>,
    pub title_snippet: Option<String>,
    pub rank: f64,
}

impl Hit {
    /// The hit's position among equal ranks.
    pub fn key(&self) -> String {
        hit_key(&self.entity_type, &self.external_id)
    }
}

/// The tie-breaking key of an entity in search order.
pub fn hit_key(entity_type: &str, external_id: &str) -> String {
    format!("{entity_type}\u{1f}{external_id}")
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Hits {
    pub hits: Vec<Hit>,
}

/// `POST /stats`: the object's database size and its live entities.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub bytes: u64,
    pub entities: i64,
}

/// `POST /forget`: the account lost a parent (a repository): the parent entity and every entity
/// under it are deleted outright (their data may no longer be kept).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForgetRequest {
    /// The parent's entity type and its external id.
    pub entity: String,
    pub id: String,
    /// JSON path of the parent's key in its data (what its children carry as their parent).
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Forgotten {
    pub deleted: i64,
}

/// What became of a commit.
#[derive(Debug, PartialEq)]
pub enum CommitOutcome {
    Applied,
    /// The epoch is older than one the object accepted: the slice lost its lease.
    Stale,
    /// The integration was deleted and its data dropped.
    Dropped,
}

/// The object of one integration.
pub struct DataPlane<'a> {
    env: &'a Env,
    integration: &'a str,
}

impl<'a> DataPlane<'a> {
    pub fn new(env: &'a Env, integration: &'a str) -> Self {
        DataPlane { env, integration }
    }

    async fn post<B: Serialize>(&self, path: &str, body: &B) -> ApiResult<DoResponse> {
        do_client::call(self.env, BINDING, self.integration, Method::Post, path, Some(body)).await
    }

    fn ok<T: serde::de::DeserializeOwned>(&self, path: &str, r: DoResponse) -> ApiResult<T> {
        match r.status {
            200 => r.json(),
            410 => Err(ApiError::not_found("The integration's data was deleted")),
            s => Err(ApiError::internal(format!("IntegrationData {path} answered {s}: {}", r.message()))),
        }
    }

    pub async fn commit(&self, req: &CommitRequest<&Value>) -> ApiResult<CommitOutcome> {
        let r = self.post(COMMIT, req).await?;
        match (r.status, r.code().as_str()) {
            (409, "STALE_EPOCH") => Ok(CommitOutcome::Stale),
            (410, _) => Ok(CommitOutcome::Dropped),
            _ => self.ok::<Committed>(COMMIT, r).map(|_| CommitOutcome::Applied),
        }
    }

    pub async fn start(&self, req: &StartRequest) -> ApiResult<Started> {
        let r = self.post(START, req).await?;
        self.ok(START, r)
    }

    /// Stores items outside a run; `Ok(false)` when the integration's data was dropped.
    pub async fn upsert<D: Serialize>(&self, req: &UpsertRequest<D>) -> ApiResult<bool> {
        let r = self.post(UPSERT, req).await?;
        if r.status == 410 {
            return Ok(false);
        }
        self.ok::<Committed>(UPSERT, r).map(|_| true)
    }

    pub async fn import(&self, req: &ImportRequest) -> ApiResult<bool> {
        let r = self.post(IMPORT, req).await?;
        if r.status == 410 {
            return Ok(false);
        }
        self.ok::<Committed>(IMPORT, r).map(|_| true)
    }

    pub async fn entities(&self, req: &EntitiesRequest) -> ApiResult<EntitiesPage> {
        let r = self.post(ENTITIES, req).await?;
        self.ok(ENTITIES, r)
    }

    pub async fn search(&self, req: &SearchRequest) -> ApiResult<Hits> {
        let r = self.post(SEARCH, req).await?;
        if r.status == 400 {
            return Err(ApiError::invalid_field("q", "This query cannot be searched"));
        }
        self.ok(SEARCH, r)
    }

    pub async fn stats(&self) -> ApiResult<Stats> {
        let r = self.post(STATS, &serde_json::json!({})).await?;
        if r.status == 410 {
            return Ok(Stats { bytes: 0, entities: 0 });
        }
        self.ok(STATS, r)
    }

    /// Deletes a parent entity and everything under it; the number of entities deleted.
    pub async fn forget(&self, req: &ForgetRequest) -> ApiResult<i64> {
        let r = self.post(FORGET, req).await?;
        if r.status == 410 {
            return Ok(0);
        }
        self.ok::<Forgotten>(FORGET, r).map(|f| f.deleted)
    }

    /// Deletes everything the object holds; later writes are refused.
    pub async fn drop_all(&self) -> ApiResult<()> {
        let r = self.post(DROP, &serde_json::json!({})).await?;
        self.ok::<Value>(DROP, r).map(|_| ())
    }
}

/// Items stored outside a run, grouped by entity type (one group per type, in first-seen order).
pub fn groups<'a>(items: &'a [(&'static str, Item)]) -> Vec<UpsertGroup<&'a Value>> {
    let mut out: Vec<UpsertGroup<&Value>> = Vec::new();
    for (entity, item) in items {
        let wire = WireItem::of(item);
        match out.iter_mut().find(|g| g.entity == *entity) {
            Some(g) => g.items.push(wire),
            None => out.push(UpsertGroup { entity: (*entity).to_string(), items: vec![wire] }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_travel_as_json_and_arrive_as_raw_text() {
        let item = Item::new("o/r#1", "2026-01-01T00:00:00.000Z", json!({ "title": "Bug", "n": 1 })).under("o/r");
        let sent = serde_json::to_string(&WireItem::of(&item)).unwrap();
        assert_eq!(sent, r#"{"e":"o/r#1","d":{"n":1,"title":"Bug"},"m":"2026-01-01T00:00:00.000Z","p":"o/r"}"#);
        let got: RawItem = serde_json::from_str(&sent).unwrap();
        assert_eq!(got.d.get(), r#"{"n":1,"title":"Bug"}"#);
        assert!(!got.x);
        let gone = serde_json::to_string(&WireItem::of(&Item::gone("x"))).unwrap();
        assert!(gone.ends_with(r#","x":true}"#), "{gone}");
    }

    #[test]
    fn upserts_are_grouped_by_entity_type() {
        let items = vec![
            ("issues", Item::new("1", "", json!({}))),
            ("pulls", Item::new("2", "", json!({}))),
            ("issues", Item::new("3", "", json!({}))),
        ];
        let g = groups(&items);
        assert_eq!(
            g.iter().map(|g| (g.entity.as_str(), g.items.len())).collect::<Vec<_>>(),
            [("issues", 2), ("pulls", 1)]
        );
    }
}
