//! The sync engine's decisions, as plain Rust over two small traits: `SyncStore` (where runs,
//! checkpoints and entities live: D1 in production, a map in unit tests) and `Source` (the
//! service behind the integration). One call of `run_slice` is one slice of a run: it takes
//! the run's lease, works page by page while the invocation's subrequest budget lasts, and
//! writes each page's entities together with the run's progress in one store commit, so a
//! crash never leaves a page half-written and a redelivered slice resumes where the last
//! commit left off. What happens next (continue, defer, retry, done) is the caller's to
//! schedule — the queue consumer in `jobs.rs`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::service::{Item, Page, PageRequest, Parent, ServiceError};
use crate::time::Millis;

/// How long a slice may hold a run before another worker may take it over. Each committed
/// page renews it, so only a dead (or wedged) worker loses its lease.
pub const DEFAULT_LEASE_MS: Millis = 5 * 60 * 1000;
/// Store calls a slice keeps in reserve after its last page: the final commit/release and the
/// continuation message.
const RESERVE: u32 = 2;
/// Slices in a row that may end without committing a page before the run is failed
/// (`SYNC_NO_PROGRESS`): a budget that never reaches a commit would otherwise loop forever.
pub const MAX_IDLE_SLICES: u32 = 5;

/// The position of a run inside one entity type (saved between slices).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// Parent keys this entity type walks, fixed when it starts (`[""]` without parents).
    pub parents: Vec<String>,
    /// Each parent's stored checkpoint (`None`: a full pass over that parent).
    pub since: Vec<Option<String>>,
    /// Index into `parents`.
    pub parent: usize,
    /// The service's cursor for the next page of the current parent.
    pub cursor: Option<Value>,
    /// The checkpoint the current parent's pass will store when it ends.
    pub checkpoint: Option<String>,
}

/// A run's resumable state (stored with the run).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    pub entities: Vec<String>,
    pub index: usize,
    pub position: Option<Position>,
    /// The integration's `config.filters` when the run was created: every slice of the run
    /// applies the same ones, whatever a later update says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Value>,
    /// Walk only this parent (a push notification about one calendar); `None`: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_parent: Option<String>,
}

/// The parent keys a filter lists (its [`Parent::filter`] entry), when it is set.
fn listed_parents(parent: Option<Parent>, filters: Option<&Value>) -> Option<Vec<String>> {
    let list = filters?.get(parent?.filter?)?.as_array()?;
    Some(list.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

/// Keeps the parents `listed` names (and their checkpoints), compared without case (GitHub's
/// `owner/name`, calendar ids).
fn keep_parents(pos: &mut Position, listed: &[String]) {
    let since = std::mem::take(&mut pos.since);
    for (i, p) in std::mem::take(&mut pos.parents).into_iter().enumerate() {
        if listed.iter().any(|l| l.eq_ignore_ascii_case(&p)) {
            pos.since.push(since.get(i).cloned().flatten());
            pos.parents.push(p);
        }
    }
}

/// A run as a slice finds it.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub integration_id: String,
    pub full: bool,
    pub state: RunState,
    pub records: i64,
    pub requests: i64,
    /// The lease's epoch: it grows with every claim of any run of the integration, and the
    /// data store refuses a commit whose epoch is older than one it accepted (a fencing token).
    pub epoch: i64,
    /// Slices in a row that ended without committing anything.
    pub idle_slices: u32,
}

/// One page's worth of writes, applied atomically, and only while `owner` holds the lease.
#[derive(Debug)]
pub struct Commit<'a> {
    pub run: &'a Run,
    pub owner: &'a str,
    pub entity: &'a str,
    pub items: &'a [Item],
    /// `(parent, checkpoint)` when a parent's pass ended.
    pub checkpoint: Option<(&'a str, &'a str)>,
    /// A full pass over this parent ended: its entities not seen in this run are deleted.
    pub sweep_parent: Option<&'a str>,
    /// The entity type ended on a full run: entities under parents no longer walked are deleted.
    pub sweep_orphans: Option<&'a [String]>,
    pub note: Option<String>,
    pub now: Millis,
    pub lease_until: Millis,
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Completed,
    /// A permanent failure; `auth` puts the integration in `error` for its owner to fix.
    Failed {
        message: String,
        auth: bool,
    },
    /// Slice after slice ended without committing a page (`SYNC_NO_PROGRESS`).
    NoProgress(String),
}

/// What a release recorded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Released {
    /// Consecutive failed slices, this one included.
    pub failures: u32,
}

/// Why the store could not do what a slice asked. Either way the slice ends and its queue
/// message is retried; the last commit stays.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The store could not be reached, or refused the statement.
    Unavailable(String),
    /// What the store answered could not be read as expected.
    Unreadable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "store unavailable: {m}"),
            StoreError::Unreadable(m) => write!(f, "store answer unreadable: {m}"),
        }
    }
}

/// Where runs, checkpoints and entities are kept. Every method is one store round trip (one
/// subrequest on Workers).
#[allow(async_fn_in_trait)] // single-threaded Workers runtime: no Send bound wanted
pub trait SyncStore {
    /// Takes the lease of an unfinished run for `owner` (or renews `owner`'s own). `None` when
    /// the run is finished, another worker holds an unexpired lease, or `chain` is not the run's
    /// current chain of messages (a message of a chain the cron has replaced stops there).
    async fn claim(
        &self,
        run_id: &str,
        owner: &str,
        chain: i64,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Run>, StoreError>;
    /// The parent keys an entity type walks and each one's checkpoint (`full`: none).
    async fn start_entity(
        &self,
        integration_id: &str,
        entity: &str,
        parent: Option<Parent>,
        full: bool,
    ) -> Result<Position, StoreError>;
    /// Applies a page; `false` when the lease was lost (nothing was written).
    async fn commit(&self, c: Commit<'_>) -> Result<bool, StoreError>;
    /// Saves the state and gives up the lease until `resume_at` (a later message continues).
    /// With an `error`, counts one more consecutive failure and answers the count; `idle` says
    /// the slice committed nothing (a committed page resets the count of idle slices).
    async fn release(
        &self,
        run: &Run,
        owner: &str,
        now: Millis,
        resume_at: Millis,
        error: Option<&str>,
        idle: bool,
    ) -> Result<Released, StoreError>;
    /// Ends the run and updates its integration.
    async fn finish(&self, run: &Run, owner: &str, now: Millis, ending: &Ending) -> Result<(), StoreError>;
    /// Subrequests this store has made so far (a commit may take more than one).
    fn calls(&self) -> u32;
    /// Subrequests one commit takes.
    fn commit_calls(&self) -> u32 {
        1
    }
}

/// The service side of a run.
#[allow(async_fn_in_trait)]
pub trait Source {
    fn parent(&self, entity: &str) -> Option<Parent>;
    /// Opens the credentials (one subrequest). An error here ends the slice like a page error.
    async fn open(&mut self) -> Result<(), ServiceError>;
    async fn page(&self, req: &PageRequest<'_>) -> Result<Page, ServiceError>;
    /// Upstream requests made so far through this source.
    fn requests(&self) -> u32;
}

/// What the caller does after a slice.
#[derive(Debug, Clone, PartialEq)]
pub enum Slice {
    /// Finished, or another worker holds the lease: nothing to do.
    NotClaimed,
    /// The budget is spent; progress is saved: continue in a new invocation now.
    Continue,
    /// Rate limited: continue at this instant.
    Deferred(Millis),
    /// A transient failure; progress is saved: retry with backoff (`failures` in a row so far).
    Retry { error: String, failures: u32 },
    /// The run ended (completed or failed).
    Done(Ending),
    /// Another worker took the run over mid-slice: stop without writing.
    LeaseLost,
}

/// The clock and limits of one slice.
pub struct Limits {
    pub now: fn() -> Millis,
    /// Subrequests this slice may make (store calls and upstream requests together).
    pub budget: u32,
    pub lease_ms: Millis,
}

/// The later of two ISO timestamps.
fn later(a: Option<String>, b: &str) -> Option<String> {
    match a {
        Some(a) if a.as_str() >= b => Some(a),
        _ if b.is_empty() => None,
        _ => Some(b.to_string()),
    }
}

/// Runs one slice of `run_id` as `owner`. Store failures are returned as `Retry`.
pub async fn run_slice<St: SyncStore, So: Source>(
    store: &St,
    source: &mut So,
    run_id: &str,
    owner: &str,
    chain: i64,
    limits: &Limits,
) -> Slice {
    match slice(store, source, run_id, owner, chain, limits).await {
        Ok(s) => s,
        // The store itself failed: nothing more can be recorded; the queue's retry resumes
        // from the last commit once the lease is free.
        Err(error) => Slice::Retry { error: error.to_string(), failures: 1 },
    }
}

async fn slice<St: SyncStore, So: Source>(
    store: &St,
    source: &mut So,
    run_id: &str,
    owner: &str,
    chain: i64,
    limits: &Limits,
) -> Result<Slice, StoreError> {
    let now = (limits.now)();
    let calls_before = store.calls();
    let Some(mut run) = store.claim(run_id, owner, chain, now, now + limits.lease_ms).await? else {
        return Ok(Slice::NotClaimed);
    };
    let spent = |source: &So| store.calls() - calls_before + source.requests();
    if let Err(e) = source.open().await {
        return end_on_error(store, &run, owner, limits, e).await;
    }
    let mut note = None;
    let mut committed = false;
    while run.state.index < run.state.entities.len() {
        let entity = run.state.entities[run.state.index].clone();
        if run.state.position.is_none() {
            let parent = source.parent(&entity);
            // A filter that lists the parents replaces the service's own rule (`only_if`).
            let listed = listed_parents(parent, run.state.filters.as_ref());
            let spec = match (parent, &listed) {
                (Some(p), Some(_)) => Some(Parent { only_if: None, ..p }),
                _ => parent,
            };
            let mut pos = store.start_entity(&run.integration_id, &entity, spec, run.full).await?;
            if let Some(listed) = &listed {
                keep_parents(&mut pos, listed);
            }
            if let (Some(only), Some(_)) = (&run.state.only_parent, parent) {
                let keep: Vec<bool> = pos.parents.iter().map(|p| p == only).collect();
                let mut k = keep.iter();
                pos.parents.retain(|_| *k.next().unwrap_or(&false));
                let mut k = keep.iter();
                pos.since.retain(|_| *k.next().unwrap_or(&false));
                if pos.parents.is_empty() {
                    // The parent is no longer walked (e.g. a calendar left the sync): nothing to do.
                    run.state.index += 1;
                    continue;
                }
            }
            run.state.position = Some(pos);
        }
        let left = limits.budget.saturating_sub(spent(source));
        // A page costs at least one request and one commit; keep the reserve for the end.
        if left < 1 + store.commit_calls() + RESERVE {
            let now = (limits.now)();
            let idle = !committed;
            if idle && run.idle_slices + 1 >= MAX_IDLE_SLICES {
                let why = format!(
                    "{}: no page could be committed in {MAX_IDLE_SLICES} slices in a row; each one's budget of {} subrequests was spent first",
                    run.state.entities.get(run.state.index).map_or("sync", String::as_str),
                    limits.budget
                );
                let ending = Ending::NoProgress(why);
                store.finish(&run, owner, now, &ending).await?;
                return Ok(Slice::Done(ending));
            }
            store.release(&run, owner, now, now, None, idle).await?;
            return Ok(Slice::Continue);
        }
        let pos = run.state.position.clone().unwrap_or_default();
        let parent = pos.parents.get(pos.parent).cloned().unwrap_or_default();
        let since = pos.since.get(pos.parent).cloned().flatten();
        let before = source.requests();
        let req = PageRequest {
            entity: &entity,
            parent: &parent,
            cursor: pos.cursor.as_ref(),
            since: since.as_deref(),
            max_requests: left - store.commit_calls() - RESERVE,
            filters: run.state.filters.as_ref(),
        };
        let page = source.page(&req).await;
        run.requests += i64::from(source.requests() - before);
        let page = match page {
            Ok(p) => p,
            Err(ServiceError::CheckpointExpired(reason)) if since.is_some() => {
                // The provider forgot our checkpoint: this parent's pass starts over, in full.
                let mut p = pos.clone();
                p.since[p.parent] = None;
                p.cursor = None;
                p.checkpoint = None;
                run.state.position = Some(p);
                note = Some(format!("{entity}: {reason}; starting a full pass"));
                continue;
            }
            Err(e) => return end_on_error(store, &run, owner, limits, e).await,
        };
        let mut items = page.items;
        for i in &mut items {
            if i.parent.is_empty() {
                i.parent.clone_from(&parent);
            }
        }
        let mut next = pos.clone();
        next.checkpoint = match page.checkpoint {
            Some(c) => Some(c),
            None => {
                items.iter().filter(|i| !i.deleted).fold(next.checkpoint.take(), |acc, i| later(acc, &i.modified_at))
            }
        };
        run.records += items.len() as i64;
        let (mut checkpoint, mut sweep_parent, mut sweep_orphans) = (None, None, None);
        let parent_done = page.next.is_none();
        if parent_done {
            checkpoint = next.checkpoint.clone().map(|c| (parent.clone(), c));
            if since.is_none() {
                sweep_parent = Some(parent.clone());
            }
            next.parent += 1;
            next.cursor = None;
            next.checkpoint = None;
        } else {
            next.cursor = page.next;
        }
        let entity_done = parent_done && next.parent >= next.parents.len();
        if entity_done {
            if run.full && source.parent(&entity).is_some() {
                sweep_orphans = Some(next.parents.clone());
            }
            run.state.index += 1;
            run.state.position = None;
        } else {
            run.state.position = Some(next);
        }
        let now = (limits.now)();
        let applied = store
            .commit(Commit {
                run: &run,
                owner,
                entity: &entity,
                items: &items,
                checkpoint: checkpoint.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
                sweep_parent: sweep_parent.as_deref(),
                sweep_orphans: sweep_orphans.as_deref(),
                note: note.take(),
                now,
                lease_until: now + limits.lease_ms,
            })
            .await?;
        if !applied {
            return Ok(Slice::LeaseLost);
        }
        committed = true;
    }
    let ending = Ending::Completed;
    store.finish(&run, owner, (limits.now)(), &ending).await?;
    Ok(Slice::Done(ending))
}

/// A failed page (or credential load): defer on rate limits, retry transient failures (the
/// state of the last commit stays), end the run on everything else.
async fn end_on_error<St: SyncStore>(
    store: &St,
    run: &Run,
    owner: &str,
    limits: &Limits,
    e: ServiceError,
) -> Result<Slice, StoreError> {
    let now = (limits.now)();
    let entity = run.state.entities.get(run.state.index).map(String::as_str).unwrap_or("sync");
    match e {
        ServiceError::RateLimited(secs) => {
            let at = now + secs.max(1) as Millis * 1000;
            store.release(run, owner, now, at, None, false).await?;
            Ok(Slice::Deferred(at))
        }
        e if e.transient() => {
            let message = format!("{entity}: {}", e.message());
            // Hold the run until the queue's retry (with backoff) takes it back.
            let failures = store.release(run, owner, now, now + limits.lease_ms, Some(&message), false).await?.failures;
            Ok(Slice::Retry { error: message, failures })
        }
        e => {
            let ending = Ending::Failed {
                message: format!("{entity}: {}", e.message()),
                auth: matches!(e, ServiceError::Auth(_)),
            };
            store.finish(run, owner, now, &ending).await?;
            Ok(Slice::Done(ending))
        }
    }
}

/// The sync plan: the requested entity types in the service's order, or all of them when
/// the list is empty or missing (the original treated an empty list as "nothing"). Unknown names are an error.
pub fn plan(requested: &[String], supported: &[&str]) -> Result<Vec<String>, String> {
    if let Some(bad) = requested.iter().find(|r| !supported.contains(&r.as_str())) {
        return Err(format!("Unsupported entity type '{bad}'; supported: {}", supported.join(", ")));
    }
    Ok(supported
        .iter()
        .filter(|s| requested.is_empty() || requested.iter().any(|r| r == *s))
        .map(|s| s.to_string())
        .collect())
}

/// Whether a scheduled integration is due (no run started within its period), and whether
/// its run should be a full one. `realtime` is webhook-driven with an hourly safety-net run;
/// every schedule gets a full, deletion-detecting run once a day.
pub fn due(frequency: &str, last_started: Option<Millis>, last_full: Option<Millis>, now: Millis) -> Option<bool> {
    const HOUR: Millis = 3_600_000;
    const DAY: Millis = 24 * HOUR;
    let every = match frequency {
        "hourly" | "realtime" => HOUR,
        "daily" => DAY,
        _ => return None,
    };
    if last_started.is_some_and(|t| now - t < every) {
        return None;
    }
    Some(last_full.is_none_or(|t| now - t >= DAY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    thread_local! {
        static CLOCK: Cell<Millis> = const { Cell::new(1_000_000) };
    }
    fn now() -> Millis {
        CLOCK.with(|c| {
            c.set(c.get() + 10);
            c.get()
        })
    }
    fn advance(ms: Millis) {
        CLOCK.with(|c| c.set(c.get() + ms));
    }

    #[derive(Default, Clone, Debug)]
    struct Row {
        data: Value,
        parent: String,
        seen_run: String,
        deleted: bool,
    }

    /// An in-memory store with a lease and a write fault switch.
    #[derive(Default)]
    struct MemStore {
        run: RefCell<Option<Run>>,
        finished: RefCell<Option<Ending>>,
        lease: RefCell<Option<(String, Millis)>>,
        resume_at: Cell<Millis>,
        entities: RefCell<BTreeMap<(String, String), Row>>,
        checkpoints: RefCell<BTreeMap<(String, String), String>>,
        notes: RefCell<Vec<String>>,
        fail_commits_after: Cell<Option<usize>>,
        commits: Cell<usize>,
        last_error: RefCell<Option<String>>,
        calls: Cell<u32>,
        /// The epoch of the last claim, and the newest epoch a commit was accepted with.
        epoch: Cell<i64>,
        accepted_epoch: Cell<i64>,
        /// The parent spec of the last entity started.
        started_with: RefCell<Option<Parent>>,
    }

    impl MemStore {
        fn with_run(entities: &[&str], full: bool) -> Self {
            let s = MemStore::default();
            *s.run.borrow_mut() = Some(Run {
                id: "run1".into(),
                integration_id: "i1".into(),
                full,
                state: RunState {
                    entities: entities.iter().map(|e| e.to_string()).collect(),
                    index: 0,
                    position: None,
                    filters: None,
                    only_parent: None,
                },
                records: 0,
                requests: 0,
                epoch: 0,
                idle_slices: 0,
            });
            s
        }
        fn restart(&self, full: bool) {
            let mut r = self.run.borrow_mut();
            let run = r.as_mut().unwrap();
            run.full = full;
            run.id = format!("{}+", run.id);
            run.state.index = 0;
            run.state.position = None;
            run.records = 0;
            *self.finished.borrow_mut() = None;
            *self.lease.borrow_mut() = None;
        }
        fn live(&self, entity: &str) -> usize {
            self.entities.borrow().iter().filter(|((e, _), r)| e == entity && !r.deleted).count()
        }
    }

    impl SyncStore for MemStore {
        async fn claim(
            &self,
            _id: &str,
            owner: &str,
            _chain: i64,
            now: Millis,
            until: Millis,
        ) -> Result<Option<Run>, StoreError> {
            if self.finished.borrow().is_some() {
                return Ok(None);
            }
            let mut lease = self.lease.borrow_mut();
            if let Some((o, t)) = &*lease {
                if o != owner && *t > now {
                    return Ok(None);
                }
            }
            *lease = Some((owner.to_string(), until));
            self.calls.set(self.calls.get() + 1);
            self.epoch.set(self.epoch.get() + 1);
            let mut run = self.run.borrow().clone();
            if let Some(r) = &mut run {
                r.epoch = self.epoch.get();
            }
            Ok(run)
        }

        async fn start_entity(
            &self,
            _i: &str,
            _e: &str,
            parent: Option<Parent>,
            full: bool,
        ) -> Result<Position, StoreError> {
            self.calls.set(self.calls.get() + 1);
            *self.started_with.borrow_mut() = parent;
            let parents: Vec<String> = match parent {
                None => vec![String::new()],
                Some(p) => self
                    .entities
                    .borrow()
                    .iter()
                    .filter(|((e, _), r)| e == p.entity && !r.deleted)
                    .map(|(_, r)| r.data["name"].as_str().unwrap_or("").to_string())
                    .collect(),
            };
            let since = parents
                .iter()
                .map(|p| if full { None } else { self.checkpoints.borrow().get(&(_e.to_string(), p.clone())).cloned() })
                .collect();
            Ok(Position { parents, since, ..Position::default() })
        }

        async fn commit(&self, c: Commit<'_>) -> Result<bool, StoreError> {
            self.calls.set(self.calls.get() + 1);
            // The data store's fencing: a commit older than an accepted one is refused.
            if c.run.epoch < self.accepted_epoch.get() {
                return Ok(false);
            }
            if let Some(n) = self.fail_commits_after.get() {
                if self.commits.get() >= n {
                    return Err(StoreError::Unavailable("D1 unavailable".into()));
                }
            }
            if self.lease.borrow().as_ref().map(|(o, _)| o.as_str()) != Some(c.owner) {
                return Ok(false);
            }
            self.commits.set(self.commits.get() + 1);
            self.accepted_epoch.set(c.run.epoch);
            let mut ents = self.entities.borrow_mut();
            for i in c.items {
                let key = (c.entity.to_string(), i.external_id.clone());
                if i.deleted {
                    if let Some(r) = ents.get_mut(&key) {
                        r.deleted = true;
                    }
                } else {
                    ents.insert(
                        key,
                        Row {
                            data: i.data.clone(),
                            parent: i.parent.clone(),
                            seen_run: c.run.id.clone(),
                            deleted: false,
                        },
                    );
                }
            }
            if let Some(p) = c.sweep_parent {
                for ((e, _), r) in ents.iter_mut() {
                    if e == c.entity && r.parent == p && r.seen_run != c.run.id {
                        r.deleted = true;
                    }
                }
            }
            if let Some(parents) = c.sweep_orphans {
                for ((e, _), r) in ents.iter_mut() {
                    if e == c.entity && !parents.contains(&r.parent) {
                        r.deleted = true;
                    }
                }
            }
            if let Some((p, cp)) = c.checkpoint {
                self.checkpoints.borrow_mut().insert((c.entity.to_string(), p.to_string()), cp.to_string());
            }
            if let Some(n) = c.note {
                self.notes.borrow_mut().push(n);
            }
            let mut saved = c.run.clone();
            saved.idle_slices = 0;
            *self.run.borrow_mut() = Some(saved);
            *self.lease.borrow_mut() = Some((c.owner.to_string(), c.lease_until));
            Ok(true)
        }

        async fn release(
            &self,
            run: &Run,
            owner: &str,
            _now: Millis,
            resume: Millis,
            error: Option<&str>,
            idle: bool,
        ) -> Result<Released, StoreError> {
            assert_eq!(self.lease.borrow().as_ref().map(|(o, _)| o.clone()), Some(owner.to_string()));
            // A slice's state between commits is always consistent (a page is applied whole).
            let mut saved = run.clone();
            saved.idle_slices = if idle { run.idle_slices + 1 } else { 0 };
            *self.run.borrow_mut() = Some(saved);
            *self.lease.borrow_mut() = None;
            self.resume_at.set(resume);
            *self.last_error.borrow_mut() = error.map(str::to_string);
            Ok(Released { failures: u32::from(error.is_some()) })
        }

        async fn finish(&self, _run: &Run, _owner: &str, _now: Millis, ending: &Ending) -> Result<(), StoreError> {
            *self.finished.borrow_mut() = Some(ending.clone());
            *self.lease.borrow_mut() = None;
            Ok(())
        }

        fn calls(&self) -> u32 {
            self.calls.get()
        }
    }

    /// A paged fake service: `repos` parents each holding `per_repo` issues, `page` per page.
    struct FakeSource {
        repos: Vec<String>,
        issues: BTreeMap<String, Vec<(u32, String)>>,
        page_size: usize,
        requests: Cell<u32>,
        fail: RefCell<Vec<(u32, ServiceError)>>,
        expire_checkpoints: Cell<bool>,
    }

    impl FakeSource {
        fn new(repos: usize, per_repo: u32, page_size: usize) -> Self {
            let names: Vec<String> = (0..repos).map(|i| format!("o/r{i}")).collect();
            let issues = names
                .iter()
                .map(|r| (r.clone(), (1..=per_repo).map(|n| (n, format!("2026-01-01T00:00:{:02}Z", n % 60))).collect()))
                .collect();
            FakeSource {
                repos: names,
                issues,
                page_size,
                requests: Cell::new(0),
                fail: RefCell::new(vec![]),
                expire_checkpoints: Cell::new(false),
            }
        }
    }

    impl Source for FakeSource {
        fn parent(&self, entity: &str) -> Option<Parent> {
            (entity == "issues").then_some(Parent {
                entity: "repositories",
                key: "$.name",
                only_if: Some("$.walked"),
                filter: Some("repositories"),
            })
        }
        async fn open(&mut self) -> Result<(), ServiceError> {
            self.requests.set(self.requests.get() + 1);
            Ok(())
        }
        async fn page(&self, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
            let n = self.requests.get() + 1;
            self.requests.set(n);
            let hit = self.fail.borrow().iter().position(|(at, _)| *at == n);
            if let Some(i) = hit {
                return Err(self.fail.borrow_mut().remove(i).1);
            }
            let start = req.cursor.and_then(Value::as_u64).unwrap_or(0) as usize;
            if req.entity == "repositories" {
                let items: Vec<Item> = self
                    .repos
                    .iter()
                    .map(|r| Item::new(r.clone(), "2026-01-01T00:00:00Z", serde_json::json!({ "name": r })))
                    .collect();
                return Ok(Page { items, next: None, checkpoint: None });
            }
            if req.since.is_some() && self.expire_checkpoints.get() {
                return Err(ServiceError::CheckpointExpired("cursor too old".into()));
            }
            let all = &self.issues[req.parent];
            let list: Vec<&(u32, String)> =
                all.iter().filter(|(_, m)| req.since.is_none_or(|s| m.as_str() > s)).collect();
            let items = list
                .iter()
                .skip(start)
                .take(self.page_size)
                .map(|(n, m)| Item::new(format!("{}#{n}", req.parent), m.clone(), serde_json::json!({ "n": n })))
                .collect();
            let next = (start + self.page_size < list.len()).then(|| serde_json::json!(start + self.page_size));
            Ok(Page { items, next, checkpoint: None })
        }
        fn requests(&self) -> u32 {
            self.requests.get()
        }
    }

    fn limits(budget: u32) -> Limits {
        Limits { now, budget, lease_ms: 60_000 }
    }

    fn drive(store: &MemStore, budget: u32) -> (Slice, usize) {
        let mut slices = 0;
        loop {
            let mut src_requests = FAKE.with(|f| f.borrow_mut().take()).expect("fake");
            slices += 1;
            let s = futures::executor::block_on(run_slice(
                store,
                &mut src_requests,
                "run1",
                &format!("msg{slices}"),
                0,
                &limits(budget),
            ));
            src_requests.requests.set(0);
            FAKE.with(|f| *f.borrow_mut() = Some(src_requests));
            match s {
                Slice::Continue => continue,
                other => return (other, slices),
            }
        }
    }

    thread_local! {
        static FAKE: RefCell<Option<FakeSource>> = const { RefCell::new(None) };
    }

    fn install(src: FakeSource) {
        FAKE.with(|f| *f.borrow_mut() = Some(src));
    }

    #[test]
    fn a_run_larger_than_the_budget_completes_over_slices_with_exact_counts() {
        install(FakeSource::new(3, 25, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        let (end, slices) = drive(&store, 8);
        assert_eq!(end, Slice::Done(Ending::Completed));
        assert!(slices > 3, "{slices} slices");
        assert_eq!(store.live("repositories"), 3);
        assert_eq!(store.live("issues"), 75);
        let run = store.run.borrow().clone().unwrap();
        assert_eq!(run.records, 78);
        // One checkpoint per repository (per parent), at its newest item.
        assert_eq!(store.checkpoints.borrow().len(), 3 + 1);
        assert_eq!(store.checkpoints.borrow()[&("issues".into(), "o/r1".into())], "2026-01-01T00:00:25Z");
    }

    #[test]
    fn a_filter_listing_parents_walks_only_those_and_a_full_run_sweeps_the_others() {
        install(FakeSource::new(3, 5, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        assert_eq!(store.live("issues"), 15);
        assert_eq!(store.started_with.borrow().unwrap().only_if, Some("$.walked"), "no filter: the service's rule");
        // The filters are the run's own (kept in its state); parent keys compare without case.
        *store.finished.borrow_mut() = None;
        store.run.borrow_mut().as_mut().unwrap().state = RunState {
            entities: vec!["issues".into()],
            filters: Some(serde_json::json!({ "repositories": ["O/R1"] })),
            ..RunState::default()
        };
        let (end, _) = drive(&store, 100);
        assert_eq!(end, Slice::Done(Ending::Completed));
        assert_eq!(store.started_with.borrow().unwrap().only_if, None, "the list replaces the service's rule");
        let live: Vec<String> = store
            .entities
            .borrow()
            .iter()
            .filter(|((e, _), r)| e == "issues" && !r.deleted)
            .map(|((_, id), _)| id.clone())
            .collect();
        assert_eq!(live, ["o/r1#1", "o/r1#2", "o/r1#3", "o/r1#4", "o/r1#5"]);
        let state: RunState =
            serde_json::from_str(&serde_json::to_string(&store.run.borrow().as_ref().unwrap().state).unwrap()).unwrap();
        assert_eq!(state.filters, Some(serde_json::json!({ "repositories": ["O/R1"] })), "kept across slices");
    }

    #[test]
    fn a_run_scoped_to_one_parent_walks_only_that_parent() {
        install(FakeSource::new(3, 5, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        let before = store.checkpoints.borrow().len();
        // A push about one repository: an incremental run of its issues only.
        install(FakeSource::new(3, 7, 10));
        let scoped = MemStore::default();
        *scoped.entities.borrow_mut() = store.entities.borrow().clone();
        *scoped.checkpoints.borrow_mut() = store.checkpoints.borrow().clone();
        let mut run = store.run.borrow().clone().unwrap();
        run.full = false;
        run.state =
            RunState { entities: vec!["issues".into()], only_parent: Some("o/r1".into()), ..RunState::default() };
        run.records = 0;
        *scoped.run.borrow_mut() = Some(run);
        assert_eq!(drive(&scoped, 100).0, Slice::Done(Ending::Completed));
        assert_eq!(scoped.run.borrow().as_ref().unwrap().records, 2, "only o/r1's two new issues");
        assert_eq!(scoped.live("issues"), 15 + 2);
        assert_eq!(scoped.checkpoints.borrow().len(), before);
        // A parent no longer walked: nothing to do.
        install(FakeSource::new(3, 7, 10));
        let gone = MemStore::default();
        *gone.entities.borrow_mut() = store.entities.borrow().clone();
        let mut run = store.run.borrow().clone().unwrap();
        run.state = RunState {
            entities: vec!["issues".into()],
            only_parent: Some("o/elsewhere".into()),
            ..RunState::default()
        };
        run.records = 0;
        *gone.run.borrow_mut() = Some(run);
        assert_eq!(drive(&gone, 100).0, Slice::Done(Ending::Completed));
        assert_eq!(gone.run.borrow().as_ref().unwrap().records, 0);
    }

    #[test]
    fn the_budget_counts_store_calls_and_requests() {
        install(FakeSource::new(1, 100, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        let mut src = FAKE.with(|f| f.borrow_mut().take()).unwrap();
        let s = futures::executor::block_on(run_slice(&store, &mut src, "run1", "m", 0, &limits(12)));
        assert_eq!(s, Slice::Continue);
        // claim + open + repositories (page + commit) + start_entity + issues pages … + release
        let calls = 1 + src.requests() + store.commits.get() as u32 + 1 + 1;
        assert!(calls <= 12, "{calls} subrequests");
    }

    #[test]
    fn a_slice_that_dies_after_a_commit_resumes_without_duplicates() {
        install(FakeSource::new(2, 30, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        store.fail_commits_after.set(Some(3));
        let mut src = FAKE.with(|f| f.borrow_mut().take()).unwrap();
        let s = futures::executor::block_on(run_slice(&store, &mut src, "run1", "m1", 0, &limits(100)));
        assert!(matches!(s, Slice::Retry { .. }), "{s:?}");
        // The redelivered message (same owner) takes its own lease back at once.
        store.fail_commits_after.set(None);
        src.requests.set(0);
        let s = futures::executor::block_on(run_slice(&store, &mut src, "run1", "m1", 0, &limits(100)));
        assert_eq!(s, Slice::Done(Ending::Completed));
        assert_eq!(store.live("issues"), 60);
        assert_eq!(store.run.borrow().as_ref().unwrap().records, 62);
    }

    #[test]
    fn slices_that_never_reach_a_commit_fail_the_run_with_no_progress() {
        // Each page needs more than the budget leaves after the claim and the entity's start.
        install(FakeSource::new(1, 30, 10));
        let store = MemStore::with_run(&["repositories"], true);
        let mut slices = 0;
        let end = loop {
            let mut src = FAKE.with(|f| f.borrow_mut().take()).unwrap();
            slices += 1;
            let s =
                futures::executor::block_on(run_slice(&store, &mut src, "run1", &format!("m{slices}"), 0, &limits(5)));
            src.requests.set(0);
            FAKE.with(|f| *f.borrow_mut() = Some(src));
            if s != Slice::Continue {
                break s;
            }
            assert!(slices < 50, "the run never ended");
        };
        assert_eq!(slices, MAX_IDLE_SLICES as usize);
        match end {
            Slice::Done(Ending::NoProgress(why)) => assert!(why.contains("no page could be committed"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_committed_page_resets_the_count_of_idle_slices() {
        install(FakeSource::new(1, 200, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        store.run.borrow_mut().as_mut().unwrap().idle_slices = MAX_IDLE_SLICES - 1;
        let (end, _) = drive(&store, 8);
        assert_eq!(end, Slice::Done(Ending::Completed));
    }

    #[test]
    fn a_stale_slice_cannot_commit_after_a_newer_lease_did() {
        install(FakeSource::new(1, 30, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        let mut src = FAKE.with(|f| f.borrow_mut().take()).unwrap();
        // Slice A claims (epoch 1) and is then stalled; its lease expires and slice B (epoch 2)
        // runs the whole sync.
        let stale = futures::executor::block_on(store.claim("run1", "a", 0, 0, 1)).unwrap().unwrap();
        let s = futures::executor::block_on(run_slice(&store, &mut src, "run1", "b", 0, &limits(100)));
        assert_eq!(s, Slice::Done(Ending::Completed));
        let before = store.live("issues");
        // A wakes up and tries to write what it fetched: refused, nothing changes.
        *store.lease.borrow_mut() = Some(("a".into(), Millis::MAX));
        let late = vec![Item::new("o/r0#999", "2030-01-01T00:00:00Z", json!({ "n": 999 })).under("o/r0")];
        let commit = Commit {
            run: &stale,
            owner: "a",
            entity: "issues",
            items: &late,
            checkpoint: None,
            sweep_parent: Some("o/r0"),
            sweep_orphans: None,
            note: None,
            now: 5,
            lease_until: 10,
        };
        assert!(!futures::executor::block_on(store.commit(commit)).unwrap(), "the stale commit is refused");
        assert_eq!(store.live("issues"), before);
    }

    #[test]
    fn a_page_committed_twice_leaves_one_state() {
        let store = MemStore::with_run(&["issues"], false);
        let run = futures::executor::block_on(store.claim("run1", "m", 0, 0, 100)).unwrap().unwrap();
        let items: Vec<Item> = (1..=5)
            .map(|n| Item::new(format!("o/r#{n}"), "2026-01-01T00:00:00Z", json!({ "n": n })).under("o/r"))
            .collect();
        let commit = || Commit {
            run: &run,
            owner: "m",
            entity: "issues",
            items: &items,
            checkpoint: Some(("o/r", "2026-01-01T00:00:00Z")),
            sweep_parent: None,
            sweep_orphans: None,
            note: None,
            now: 1,
            lease_until: 100,
        };
        assert!(futures::executor::block_on(store.commit(commit())).unwrap());
        let first = (store.live("issues"), store.checkpoints.borrow().clone());
        assert!(futures::executor::block_on(store.commit(commit())).unwrap());
        assert_eq!((store.live("issues"), store.checkpoints.borrow().clone()), first);
    }

    #[test]
    fn a_held_lease_keeps_other_workers_out_until_it_expires() {
        install(FakeSource::new(1, 5, 10));
        let store = MemStore::with_run(&["repositories"], false);
        *store.lease.borrow_mut() = Some(("other".into(), now() + 30_000));
        let mut src = FAKE.with(|f| f.borrow_mut().take()).unwrap();
        assert_eq!(
            futures::executor::block_on(run_slice(&store, &mut src, "run1", "m", 0, &limits(50))),
            Slice::NotClaimed
        );
        advance(31_000);
        assert_eq!(
            futures::executor::block_on(run_slice(&store, &mut src, "run1", "m", 0, &limits(50))),
            Slice::Done(Ending::Completed)
        );
        assert_eq!(
            futures::executor::block_on(run_slice(&store, &mut src, "run1", "m", 0, &limits(50))),
            Slice::NotClaimed
        );
    }

    #[test]
    fn rate_limits_defer_transient_errors_retry_and_auth_errors_fail() {
        install(FakeSource::new(1, 30, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        let mut src = FAKE.with(|f| f.borrow_mut().take()).unwrap();
        src.fail.borrow_mut().push((4, ServiceError::RateLimited(30)));
        let t = CLOCK.with(Cell::get);
        match futures::executor::block_on(run_slice(&store, &mut src, "run1", "m", 0, &limits(100))) {
            Slice::Deferred(at) => assert!(at >= t + 30_000 && at < t + 31_000),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.live("issues"), 10, "the page before the limit is kept");
        src.requests.set(0);
        src.fail.borrow_mut().push((2, ServiceError::Upstream { status: 502, message: "bad gateway".into() }));
        let s = futures::executor::block_on(run_slice(&store, &mut src, "run1", "m2", 0, &limits(100)));
        assert_eq!(s, Slice::Retry { error: "issues: upstream answered 502: bad gateway".into(), failures: 1 });
        assert!(store.last_error.borrow().is_some());
        src.requests.set(0);
        src.fail.borrow_mut().push((3, ServiceError::Auth("token revoked".into())));
        let s = futures::executor::block_on(run_slice(&store, &mut src, "run1", "m2", 0, &limits(100)));
        assert_eq!(s, Slice::Done(Ending::Failed { message: "issues: token revoked".into(), auth: true }));
    }

    #[test]
    fn full_runs_mark_missing_entities_and_vanished_parents_deleted() {
        install(FakeSource::new(2, 10, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        assert_eq!(store.live("issues"), 20);
        FAKE.with(|f| {
            let mut f = f.borrow_mut();
            let src = f.as_mut().unwrap();
            src.issues.get_mut("o/r0").unwrap().retain(|(n, _)| *n != 3);
            src.repos.pop(); // o/r1 disappears with its issues
        });
        store.restart(true);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        assert_eq!(store.live("repositories"), 1);
        assert_eq!(store.live("issues"), 9);
    }

    #[test]
    fn incremental_runs_use_per_parent_checkpoints_so_new_parents_get_full_history() {
        install(FakeSource::new(1, 10, 10));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        FAKE.with(|f| {
            let mut f = f.borrow_mut();
            let src = f.as_mut().unwrap();
            src.repos.push("o/new".into());
            src.issues.insert("o/new".into(), (1..=7).map(|n| (n, "2025-06-01T00:00:00Z".to_string())).collect());
        });
        store.restart(false);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        // Its issues are older than the other repository's checkpoint, and still all arrive.
        assert_eq!(store.live("issues"), 17);
    }

    #[test]
    fn an_expired_checkpoint_restarts_that_pass_in_full_with_a_note() {
        install(FakeSource::new(1, 10, 4));
        let store = MemStore::with_run(&["repositories", "issues"], true);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        FAKE.with(|f| f.borrow().as_ref().unwrap().expire_checkpoints.set(true));
        store.restart(false);
        assert_eq!(drive(&store, 100).0, Slice::Done(Ending::Completed));
        assert_eq!(store.live("issues"), 10);
        assert_eq!(store.notes.borrow().len(), 1);
        assert!(store.notes.borrow()[0].contains("cursor too old"));
    }

    #[test]
    fn plans_schedules_and_backoff() {
        let all = ["repositories", "issues", "pull_requests", "commits"];
        assert_eq!(plan(&[], &all).unwrap(), all);
        assert_eq!(plan(&["commits".into(), "repositories".into()], &all).unwrap(), ["repositories", "commits"]);
        assert!(plan(&["wiki".into()], &all).is_err());
        let h = 3_600_000;
        assert_eq!(due("manual", None, None, 10 * h), None);
        assert_eq!(due("hourly", None, None, 10 * h), Some(true));
        assert_eq!(due("hourly", Some(9 * h + 1), Some(9 * h), 10 * h), None);
        assert_eq!(due("hourly", Some(9 * h), Some(9 * h), 10 * h), Some(false));
        assert_eq!(due("realtime", Some(9 * h), Some(0), 30 * h), Some(true));
        assert_eq!(due("daily", Some(20 * h), None, 30 * h), None);
        assert_eq!(later(None, "b").as_deref(), Some("b"));
        assert_eq!(later(Some("c".into()), "b").as_deref(), Some("c"));
    }
}
