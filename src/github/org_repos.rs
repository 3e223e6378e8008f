//! Org repositories and personas (the original's routes, with its conflict bug fixed): case-insensitive
//! duplicates are 409, persona references are checked, admins see disabled repositories,
//! timestamps are ISO everywhere, topics are writable.

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;

use super::repo::RepoRef;
use crate::http::input::Input;
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::time::{iso, normalize};

#[derive(Deserialize)]
struct RepoRow {
    id: String,
    org_id: String,
    provider: String,
    owner: String,
    name: String,
    full_name: String,
    description: Option<String>,
    default_branch: Option<String>,
    language: Option<String>,
    topics: Option<String>,
    enabled: i64,
    persona_id: Option<String>,
    persona_name: Option<String>,
    created_at: String,
    updated_at: String,
}

impl RepoRow {
    fn view(&self) -> Value {
        json!({
            "id": self.id, "orgId": self.org_id, "provider": self.provider, "owner": self.owner, "name": self.name,
            "fullName": self.full_name, "description": self.description,
            "defaultBranch": self.default_branch.clone().filter(|b| !b.is_empty()).unwrap_or_else(|| "main".into()),
            "language": self.language,
            "topics": self.topics.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()).unwrap_or(json!([])),
            "enabled": self.enabled != 0, "personaId": self.persona_id, "personaName": self.persona_name,
            "createdAt": normalize(&self.created_at), "updatedAt": normalize(&self.updated_at),
        })
    }
}

const SELECT: &str = "SELECT r.id, r.org_id, r.provider, r.owner, r.name, r.full_name, r.description, r.default_branch,
   r.language, r.topics, r.enabled, d.persona_id, p.name AS persona_name, r.created_at, r.updated_at
   FROM org_repositories r
   LEFT JOIN org_repo_persona_defaults d ON d.org_repo_id = r.id
   LEFT JOIN agent_personas p ON p.id = d.persona_id";

async fn list_where(db: &D1Database, only_enabled: bool) -> ApiResult<Vec<Value>> {
    let sql = format!(
        "{SELECT} WHERE r.org_id = 'default' {} ORDER BY r.full_name COLLATE NOCASE",
        if only_enabled { "AND r.enabled = 1" } else { "" }
    );
    let rows: Vec<RepoRow> = db.prepare(sql).rows().await?.results()?;
    Ok(rows.iter().map(RepoRow::view).collect())
}

async fn find(db: &D1Database, id: &str) -> ApiResult<RepoRow> {
    let row: Option<RepoRow> = crate::q!(db, &format!("{SELECT} WHERE r.id = ?1"), &id)?.one().await?;
    row.ok_or_else(|| ApiError::not_found("Repository not found"))
}

/// `GET /api/repos/org` (any user) → `{repos}`: enabled repositories.
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    Reply::ok(&json!({ "repos": list_where(&ctx.db()?, true).await? }))
}

/// `GET /api/admin/repos` (admin) → `{repos}`: all repositories, disabled ones included.
pub async fn admin_list(ctx: &Ctx) -> ApiResult<Reply> {
    Reply::ok(&json!({ "repos": list_where(&ctx.db()?, false).await? }))
}

fn topics(input: &mut Input) -> Option<String> {
    input.opt_str_list("topics", 20, 50).map(|t| json!(t).to_string())
}

/// `POST /api/admin/repos` `{fullName, description?, language?, defaultBranch?, topics?}` → 201 repo.
pub async fn create(ctx: &Ctx) -> ApiResult<Reply> {
    let mut input = Input::parse(&ctx.raw_body())?;
    let full = input.str("fullName", 3, 140);
    let description = input.opt_str("description", 0, 1000).filter(|d| !d.is_empty());
    let language = input.opt_str("language", 0, 50).filter(|l| !l.is_empty());
    let default_branch = input.opt_str("defaultBranch", 1, 255).unwrap_or_else(|| "main".into());
    let topics = topics(&mut input).unwrap_or_else(|| "[]".into());
    let repo = RepoRef::parse_full_name(&full);
    if !full.is_empty() && repo.is_none() {
        input.error("fullName", "Must be in owner/repo format");
    }
    input.finish()?;
    let repo = repo.ok_or_else(|| ApiError::invalid_field("fullName", "Must be in owner/repo format"))?;
    let db = ctx.db()?;
    let id = uuid::Uuid::new_v4().to_string();
    let now = iso(ctx.now);
    let r = crate::q!(
        &db,
        "INSERT INTO org_repositories (id, owner, name, full_name, description, default_branch, language, topics, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT DO NOTHING",
        &id,
        &repo.owner,
        &repo.name,
        &repo.full_name(),
        &description,
        &default_branch,
        &language,
        &topics,
        &now
    )?
    .exec()
    .await?;
    if r.changes() == 0 {
        return Err(ApiError::conflict(
            "ORG_REPO_EXISTS",
            format!("{} is already an org repository", repo.full_name()),
        ));
    }
    Reply::json(201, &find(&db, &id).await?.view())
}

/// `PUT /api/admin/repos/:id` `{description?, language?, defaultBranch?, enabled?, topics?}` → `{ok, repo}`.
pub async fn update(ctx: &Ctx) -> ApiResult<Reply> {
    let mut input = Input::parse(&ctx.raw_body())?;
    let has = |i: &Input, f: &str| i.has(f);
    let (set_desc, set_lang) = (has(&input, "description"), has(&input, "language"));
    let description = input.opt_str("description", 0, 1000).filter(|d| !d.is_empty());
    let language = input.opt_str("language", 0, 50).filter(|l| !l.is_empty());
    let default_branch = input.opt_str("defaultBranch", 1, 255);
    let enabled = input.opt_bool("enabled");
    let topics = topics(&mut input);
    input.finish()?;
    let db = ctx.db()?;
    let repo = find(&db, ctx.params.get("id")).await?;
    crate::q!(
        &db,
        "UPDATE org_repositories SET
           description = CASE WHEN ?1 THEN ?2 ELSE description END,
           language = CASE WHEN ?3 THEN ?4 ELSE language END,
           default_branch = COALESCE(?5, default_branch),
           enabled = COALESCE(?6, enabled),
           topics = COALESCE(?7, topics),
           updated_at = ?8
         WHERE id = ?9",
        &set_desc,
        &description,
        &set_lang,
        &language,
        &default_branch,
        &enabled.map(i32::from),
        &topics,
        &iso(ctx.now),
        &repo.id
    )?
    .exec()
    .await?;
    Reply::ok(&json!({ "ok": true, "repo": find(&db, &repo.id).await?.view() }))
}

/// `DELETE /api/admin/repos/:id` → `{ok: true}`; 404 when absent.
pub async fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let repo = find(&db, ctx.params.get("id")).await?;
    crate::q!(&db, "DELETE FROM org_repositories WHERE id = ?1", &repo.id)?.exec().await?;
    Reply::ok(&json!({ "ok": true }))
}

/// `PUT /api/admin/repos/:id/persona-default` `{personaId}`: the persona must exist and be shared.
pub async fn set_persona(ctx: &Ctx) -> ApiResult<Reply> {
    let mut input = Input::parse(&ctx.raw_body())?;
    let persona_id = input.str("personaId", 1, 100);
    input.finish()?;
    let db = ctx.db()?;
    let repo = find(&db, ctx.params.get("id")).await?;
    #[derive(Deserialize)]
    struct P {
        visibility: String,
    }
    let persona: Option<P> = crate::q!(
        &db,
        "SELECT visibility FROM agent_personas WHERE id = ?1 AND org_id = ?2",
        &persona_id,
        &repo.org_id
    )?
    .one()
    .await?;
    match persona {
        None => return Err(ApiError::new(404, "PERSONA_NOT_FOUND", "Persona not found")),
        Some(p) if p.visibility != "shared" => {
            return Err(ApiError::invalid_field("personaId", "Only shared personas can be an org repository's default"))
        }
        Some(_) => {}
    }
    crate::q!(
        &db,
        "INSERT INTO org_repo_persona_defaults (id, org_repo_id, persona_id, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(org_repo_id) DO UPDATE SET persona_id = excluded.persona_id",
        &uuid::Uuid::new_v4().to_string(),
        &repo.id,
        &persona_id,
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    Reply::ok(&json!({ "ok": true }))
}

/// `DELETE /api/admin/repos/:id/persona-default` → `{ok: true}`; 404 when none is set.
pub async fn clear_persona(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let repo = find(&db, ctx.params.get("id")).await?;
    let r = crate::q!(&db, "DELETE FROM org_repo_persona_defaults WHERE org_repo_id = ?1", &repo.id)?.exec().await?;
    if r.changes() == 0 {
        return Err(ApiError::not_found("No persona default is set"));
    }
    Reply::ok(&json!({ "ok": true }))
}

#[derive(Deserialize)]
struct PersonaRow {
    id: String,
    name: String,
    slug: String,
    description: Option<String>,
    visibility: String,
    created_at: String,
}

impl PersonaRow {
    fn view(&self) -> Value {
        json!({ "id": self.id, "name": self.name, "slug": self.slug, "description": self.description,
                "visibility": self.visibility, "createdAt": normalize(&self.created_at) })
    }
}

/// `GET /api/admin/personas` → `{personas}`.
pub async fn list_personas(ctx: &Ctx) -> ApiResult<Reply> {
    let rows: Vec<PersonaRow> = ctx
        .db()?
        .prepare("SELECT id, name, slug, description, visibility, created_at FROM agent_personas WHERE org_id = 'default' ORDER BY name")
        .rows()
        .await?
        .results()?;
    Reply::ok(&json!({ "personas": rows.iter().map(PersonaRow::view).collect::<Vec<_>>() }))
}

fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(64).collect()
}

/// `POST /api/admin/personas` `{name, slug?, description?, visibility?}` → 201 persona.
pub async fn create_persona(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let name = input.str("name", 1, 100);
    let slug = input.opt_str("slug", 1, 64).unwrap_or_else(|| slugify(&name));
    let description = input.opt_str("description", 0, 2000);
    let visibility = input
        .opt_enum("visibility", &["private", "shared"], |v| ["private", "shared"].contains(&v).then(|| v.to_string()));
    if !slug.is_empty() && !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        input.error("slug", "Lowercase letters, digits and hyphens only");
    }
    input.finish()?;
    if slug.is_empty() {
        return Err(ApiError::invalid_field("slug", "Give a slug (the name has no letters or digits)"));
    }
    let db = ctx.db()?;
    let id = uuid::Uuid::new_v4().to_string();
    let r = crate::q!(
        &db,
        "INSERT INTO agent_personas (id, name, slug, description, visibility, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT DO NOTHING",
        &id,
        &name,
        &slug,
        &description,
        &visibility.unwrap_or_else(|| "shared".into()),
        &caller.id,
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    if r.changes() == 0 {
        return Err(ApiError::conflict("PERSONA_EXISTS", format!("A persona with slug '{slug}' exists")));
    }
    let row: Option<PersonaRow> = crate::q!(
        &db,
        "SELECT id, name, slug, description, visibility, created_at FROM agent_personas WHERE id = ?1",
        &id
    )?
    .one()
    .await?;
    Reply::json(201, &row.ok_or_else(|| ApiError::internal("persona vanished"))?.view())
}

/// `DELETE /api/admin/personas/:id` → `{ok: true}` (repository defaults using it go with it).
pub async fn delete_persona(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let r = crate::q!(&db, "DELETE FROM agent_personas WHERE id = ?1", &ctx.params.get("id"))?.exec().await?;
    if r.changes() == 0 {
        return Err(ApiError::new(404, "PERSONA_NOT_FOUND", "Persona not found"));
    }
    Reply::ok(&json!({ "ok": true }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(super::slugify("Code Reviewer (Senior)"), "code-reviewer-senior");
        assert_eq!(super::slugify("!!!"), "");
    }
}
