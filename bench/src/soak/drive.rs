//! The soak's load: workers sending the mix until the deadline, the server's
//! memory sampled meanwhile, and the fault a little before the middle.

use std::collections::HashMap;
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
    /// Acknowledged saves whose version is not the one after the version
    /// they sent as If-Match (or 1, without): a write over one unseen.
    pub unseen_overwrites: usize,
    /// LearnWorlds ids of acknowledged syncs of new users.
    pub new_users: Vec<String>,
}

/// (user, slug) -> the version of the submission the clients last saw: from
/// a save's answer, or a refusal's `current_version`. Shared by the workers,
/// as a participant's tabs are.
type Versions = Mutex<HashMap<(Uuid, String), i64>>;

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
    let versions = Arc::new(Versions::default());
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for worker in 0..plan.workers.max(1) {
        let (people, outcomes, acks) = (people.clone(), outcomes.clone(), acks.clone());
        let versions = versions.clone();
        let port = server.port;
        threads.push(std::thread::spawn(move || {
            let until = Until { started, deadline };
            let seen = Record {
                outcomes: &outcomes,
                acks: &acks,
                versions: &versions,
            };
            work(port, registry, &people, worker, until, seen);
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

/// Where the workers record what they saw.
struct Record<'a> {
    outcomes: &'a Mutex<Vec<Outcome>>,
    acks: &'a Mutex<Acks>,
    versions: &'a Versions,
}

impl Record<'_> {
    fn known(&self, user: Uuid, slug: &str) -> Option<i64> {
        let versions = self.versions.lock().unwrap();
        versions.get(&(user, slug.to_owned())).copied()
    }

    fn learn(&self, user: Uuid, slug: &str, version: i64) {
        let mut versions = self.versions.lock().unwrap();
        let latest = versions.entry((user, slug.to_owned())).or_insert(version);
        *latest = (*latest).max(version);
    }

    /// Sends `request`, records its outcome, and returns its status and body.
    fn exchange(&self, port: u16, request: &http::Request, started: Instant) -> (u16, Value) {
        let sent = Instant::now();
        let (status, body) = http::send(port, request).unwrap_or((0, String::new()));
        self.outcomes.lock().unwrap().push(Outcome {
            at: sent.duration_since(started),
            status,
            latency: sent.elapsed(),
        });
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The version a save's refusal names (412 stale, 428 none sent): another
    /// worker saved it, or the submission came with the generated data.
    fn refused_over(&self, write: &Write, status: u16, answer: &Value) -> Option<i64> {
        let Write::Save(user, slug, _) = write else {
            return None;
        };
        let current = answer["error"]["details"]["current_version"].as_i64();
        let current = current.filter(|_| matches!(status, 412 | 428))?;
        self.learn(*user, slug, current);
        Some(current)
    }

    /// Remembers an acknowledged write. A save makes the version after the one
    /// it named, unless it sent what the submission already held: the same
    /// data and status change nothing and keep the version it named.
    fn acknowledge(&self, write: Write, request: &http::Request, answer: &Value) {
        let mut acks = self.acks.lock().unwrap();
        match write {
            Write::Save(user, slug, sent_version) => {
                let version = answer["submission"]["version"].as_i64().unwrap_or(-1);
                let sent: Value = request
                    .body
                    .as_deref()
                    .and_then(|body| serde_json::from_str(body).ok())
                    .unwrap_or(Value::Null);
                let unchanged = sent_version == Some(version)
                    && answer["submission"]["data"] == sent["data"]
                    && answer["submission"]["status"] == sent["status"];
                if version != sent_version.map_or(1, |v| v + 1) && !unchanged {
                    acks.unseen_overwrites += 1;
                }
                self.learn(user, &slug, version);
                acks.saves
                    .push((user, slug, version, answer["submission"]["data"].clone()));
            }
            Write::NewUser(lms) => acks.new_users.push(lms),
            Write::None => {}
        }
    }
}

/// One worker: requests of the mix one after another until the deadline,
/// each outcome recorded and each acknowledged write remembered. A save
/// refused for a version the clients had not seen is sent once more over the
/// version the refusal names, as a participant told so looks and saves again.
fn work(
    port: u16,
    registry: &Registry,
    people: &[Participant],
    worker: usize,
    Until { started, deadline }: Until,
    record: Record<'_>,
) {
    let mut rng = Rng::new(1000 + worker as u64);
    let mut n = 0u64;
    let known = |user: Uuid, slug: &str| record.known(user, slug);
    while started.elapsed() < deadline {
        n += 1;
        let (mut request, mut write) = next_request(&mut rng, registry, people, (worker, n), known);
        let (mut status, mut answer) = record.exchange(port, &request, started);
        if let Some(current) = record.refused_over(&write, status, &answer)
            && let Write::Save(_, _, sent_version) = &mut write
        {
            *sent_version = Some(current);
            request.headers.retain(|(name, _)| *name != "if-match");
            request.headers.push(("if-match", format!("\"{current}\"")));
            (status, answer) = record.exchange(port, &request, started);
            record.refused_over(&write, status, &answer);
        }
        if (200..300).contains(&status) {
            record.acknowledge(write, &request, &answer);
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
