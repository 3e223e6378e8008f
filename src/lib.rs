//! Integrations service of an AI-agent platform, on Cloudflare Workers.
//!
//! This file is only the Worker's entry points; see `app.rs` for the request pipeline
//! and one module per capability.

pub mod access;
pub mod account;
pub mod api_keys_do;
pub mod app;
#[cfg(test)]
mod architecture;
pub mod auth;
pub mod background;
pub mod channels;
pub mod config;
pub mod console;
pub mod credentials;
pub mod crypto;
pub mod db;
pub mod do_client;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod github;
pub mod http;
pub mod integration_data_do;
pub mod integrations;
pub mod jobs;
pub mod limits;
pub mod maintenance;
pub mod mcp;
pub mod openapi;
pub mod outbound;
pub mod outbox;
pub mod providers;
pub mod session_agent_do;
pub mod sessions;
pub mod signin;
pub mod slack;
pub mod telegram;
pub mod time;
pub mod webhooks;

use worker::{event, Context, Env, MessageBatch, Result, ScheduleContext, ScheduledEvent};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: worker::web_sys::Request, env: Env, ctx: Context) -> Result<worker::web_sys::Response> {
    outbound::configure(&env);
    app::handle(req, env, ctx).await
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    outbound::configure(&env);
    maintenance::run(&event.cron(), &env).await;
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    outbound::configure(&env);
    background::consume(batch, env).await
}
