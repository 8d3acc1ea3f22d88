//! The soak's load: workers sending the mix until the deadline, the server's
//! memory sampled meanwhile, and the fault a little before the middle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::fault::{self, Fault};
use super::memory;
use super::mix::{Participant, Write, next_request};
use crate::http;
use crate::rng::Rng;
use crate::server::Server;
use shared::Registry;

/// How long and how hard to drive the server, and what to break.
pub struct Plan {
    pub seconds: u64,
    pub workers: usize,
    pub fault: Fault,
    pub restart_command: Option<String>,
}

/// What one request did, as the client saw it.
pub struct Outcome {
    pub at: Duration,
    pub status: u16,
    pub latency: Duration,
}

#[derive(Default)]
pub struct Acks {
    /// (user, slug) -> (version, data) of every acknowledged save.
    pub saves: Vec<(Uuid, String, i64, Value)>,
    /// LearnWorlds ids of acknowledged syncs of new users.
    pub new_users: Vec<String>,
}

/// Everything the soak saw while driving the server.
pub struct Seen {
    pub started: Instant,
    pub deadline: Duration,
    pub outcomes: Vec<Outcome>,
    pub acks: Acks,
    /// (time since the start, the server's RSS in MiB).
    pub samples: Vec<(Duration, f64)>,
    /// When the fault began and ended, if there was one.
    pub fault_window: Option<(Duration, Duration)>,
}

/// Drives `server` as `plan` says, injecting the fault through `admin` into
/// `database`, and stops the server once the workers are done.
pub async fn drive(
    plan: Plan,
    server: Server,
    admin: &PgPool,
    database: &str,
    people: Vec<Participant>,
) -> Result<Seen> {
    let registry = Registry::embedded();
    let people = Arc::new(people);
    let started = Instant::now();
    let deadline = Duration::from_secs(plan.seconds);
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for worker in 0..plan.workers.max(1) {
        let (people, outcomes, acks) = (people.clone(), outcomes.clone(), acks.clone());
        let port = server.port;
        threads.push(std::thread::spawn(move || {
            let until = Until { started, deadline };
            work(port, registry, &people, worker, until, &outcomes, &acks);
        }));
    }
    let sampler = memory::sampler(server.pid(), started, done.clone());

    // The fault, a little before the middle of the run.
    let fault_at = deadline.mul_f64(0.4);
    let mut fault_window = None;
    if plan.fault != Fault::None {
        tokio::time::sleep(fault_at.saturating_sub(started.elapsed())).await;
        let from = started.elapsed();
        fault::inject(plan.fault, admin, database, plan.restart_command).await?;
        fault_window = Some((from, started.elapsed()));
    }
    join(threads).await?;
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    drop(server);
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    Ok(Seen {
        started,
        deadline,
        outcomes,
        acks,
        samples,
        fault_window,
    })
}

/// The run's start and length, for the workers.
#[derive(Clone, Copy)]
struct Until {
    started: Instant,
    deadline: Duration,
}

/// One worker: requests of the mix one after another until the deadline,
/// each outcome recorded and each acknowledged write remembered.
fn work(
    port: u16,
    registry: &Registry,
    people: &[Participant],
    worker: usize,
    Until { started, deadline }: Until,
    outcomes: &Mutex<Vec<Outcome>>,
    acks: &Mutex<Acks>,
) {
    let mut rng = Rng::new(1000 + worker as u64);
    let mut n = 0u64;
    while started.elapsed() < deadline {
        n += 1;
        let (request, write) = next_request(&mut rng, registry, people, worker, n);
        let sent = Instant::now();
        let (status, body) = http::send(port, &request).unwrap_or((0, String::new()));
        outcomes.lock().unwrap().push(Outcome {
            at: sent.duration_since(started),
            status,
            latency: sent.elapsed(),
        });
        if !(200..300).contains(&status) {
            continue;
        }
        let mut acks = acks.lock().unwrap();
        match write {
            Write::Save(user, slug) => {
                let saved: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let version = saved["submission"]["version"].as_i64().unwrap_or(-1);
                acks.saves
                    .push((user, slug, version, saved["submission"]["data"].clone()));
            }
            Write::NewUser(lms) => acks.new_users.push(lms),
            Write::None => {}
        }
    }
}

async fn join(threads: Vec<JoinHandle<()>>) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    })
    .await?;
    Ok(())
}
