//! Test-only fault switches (the `fault-injection` feature: the integration tests build with it,
//! deploys never). They let a test kill the Wasm instance at a chosen point — after the N-th
//! committed sync page, after a Telegram update is processed — or fail outbox deliveries, so
//! the suite can watch redelivery and retries repair what a crash left behind.

use std::cell::Cell;

/// Bytes of Wasm linear memory (it only grows: the instance's peak).
pub fn wasm_memory() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

thread_local! {
    static DIE_AFTER: Cell<u32> = const { Cell::new(0) };
    static COMMITS: Cell<u32> = const { Cell::new(0) };
    static OUTBOX_FAILURES: Cell<u32> = const { Cell::new(0) };
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

const FIRED: &str = "__integrationsFaultFired";

/// Reads the switches once per instance (counters then run down across invocations).
pub fn arm(env: &worker::Env) {
    if ARMED.with(|a| a.replace(true)) {
        return;
    }
    let n = |name: &str| crate::config::var(env, name).and_then(|v| v.parse().ok()).unwrap_or(0);
    DIE_AFTER.with(|d| d.set(n("FAULT_DIE_AFTER_COMMITS")));
    OUTBOX_FAILURES.with(|d| d.set(n("FAULT_OUTBOX_FAILURES")));
}

/// `<name>=1`: the request dies (the Wasm instance traps) here, once per isolate.
pub fn die_once(env: &worker::Env, name: &str) {
    if crate::config::var(env, name).is_none() {
        return;
    }
    let flag = format!("__fault_{name}");
    let global = worker::js_sys::global();
    if worker::js_sys::Reflect::get(&global, &flag.as_str().into()).map(|v| v.is_truthy()).unwrap_or(false) {
        return;
    }
    let _ = worker::js_sys::Reflect::set(&global, &flag.as_str().into(), &true.into());
    panic!("fault injection: {name}");
}

/// `FAULT_OUTBOX_FAILURES=n`: the first n outbox deliveries of this isolate fail.
pub fn outbox_should_fail() -> bool {
    OUTBOX_FAILURES.with(|f| {
        let left = f.get();
        f.set(left.saturating_sub(1));
        left > 0
    })
}

/// The flag lives on the JS global object, which outlives the Wasm instance a trap resets.
fn fired() -> bool {
    let global = worker::js_sys::global();
    worker::js_sys::Reflect::get(&global, &FIRED.into()).map(|v| v.is_truthy()).unwrap_or(false)
}

/// `FAULT_DIE_AFTER_COMMITS=n`: the consumer dies right after its n-th committed page, once.
pub fn after_commit() {
    let n = DIE_AFTER.with(Cell::get);
    if n == 0 || fired() {
        return;
    }
    let c = COMMITS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    if c >= n {
        let _ = worker::js_sys::Reflect::set(&worker::js_sys::global(), &FIRED.into(), &true.into());
        panic!("fault injection: the consumer dies after {c} committed pages");
    }
}
