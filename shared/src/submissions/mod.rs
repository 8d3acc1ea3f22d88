//! A participant's work on a tool: saving drafts, submitting, and reading a
//! submission back.
//!
//! - [`request`]: what a save is asked to do, checked (body, If-Match,
//!   Idempotency-Key);
//! - [`outputs`]: what a submission yields for later tools;
//! - [`save`] and [`read`]: the two operations, over the statements in [`sql`];
//! - [`handler`]: `GET` and `PUT /tools/{slug}/submission`.

pub mod handler;
pub mod outputs;
pub mod read;
pub mod request;
pub mod save;
pub mod sql;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use outputs::{extract_outputs, is_filled};
pub use request::{Budget, Idempotency, IfMatch, SaveRequest, SubmissionStatus};
pub use save::{Save, SaveOutcome, Saved, save};

use crate::progress::Status;

/// A user's one submission of a tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    pub id: Uuid,
    pub status: SubmissionStatus,
    pub version: i32,
    /// Absent from a stored replay record (see `save::replay`).
    #[serde(default)]
    pub data: Value,
    pub submitted_data: Option<Value>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub submitted_at: Option<DateTime<Utc>>,
}

/// The tool's progress row, as a save or read reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProgressState {
    pub status: Status,
    pub percentage: i32,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub completed_at: Option<DateTime<Utc>>,
}
