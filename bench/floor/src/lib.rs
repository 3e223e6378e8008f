//! The floor: the least a workers-rs worker can do for each kind of work the service's routes
//! do, so the bench can say how much of a route's CPU is the runtime's and how much is ours.
//!
//! - `GET /`: the JSON `/health` answers (`{"status":"ok","timestamp":<ms>}`), with no routing,
//!   auth or headers of its own;
//! - `GET /d1`: the same after one D1 round trip (one statement);
//! - `GET /do`: the same after one Durable Object round trip (a `fetch` the object answers at once).

use worker::{durable_object, event, Context, Date, DurableObject, Env, Request, Response, Result, State};

fn health() -> Result<Response> {
    let body = format!("{{\"status\":\"ok\",\"timestamp\":{}}}", Date::now().as_millis());
    let mut resp = Response::from_bytes(body.into_bytes())?;
    resp.headers_mut().set("Content-Type", "application/json; charset=utf-8")?;
    Ok(resp)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // The URL as the runtime has it (no parse: `GET /` stays the bare floor).
    let url = req.inner().url();
    match url.rsplit('/').next().unwrap_or_default() {
        "d1" => {
            let stmt = env.d1("DB")?.prepare("SELECT ?1 AS v").bind(&[1.into()])?;
            stmt.run().await?;
            health()
        }
        "do" => {
            let stub = env.durable_object("FLOOR")?.id_from_name("floor")?.get_stub()?;
            stub.fetch_with_str("https://floor/").await?;
            health()
        }
        _ => health(),
    }
}

#[durable_object]
pub struct Floor {
    _state: State,
}

impl DurableObject for Floor {
    fn new(state: State, _env: Env) -> Self {
        Self { _state: state }
    }

    async fn fetch(&self, _req: Request) -> Result<Response> {
        Response::from_bytes(b"{}".to_vec())
    }
}
