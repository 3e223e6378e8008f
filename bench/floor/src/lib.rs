//! The floor: answers every request with the JSON `/health` answers
//! (`{"status":"ok","timestamp":<ms>}`), with no routing, auth or headers of its own.

use worker::{event, Context, Date, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let body = format!("{{\"status\":\"ok\",\"timestamp\":{}}}", Date::now().as_millis());
    let mut resp = Response::from_bytes(body.into_bytes())?;
    resp.headers_mut().set("Content-Type", "application/json; charset=utf-8")?;
    Ok(resp)
}
