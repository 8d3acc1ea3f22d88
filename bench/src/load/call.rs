//! The workload's vocabulary: the routes, a request (a call) and the
//! statements it makes PostgreSQL run, with their bind values.

use uuid::Uuid;

use shared::progress;

/// One pgbench script per call, and wrk gets the same calls. pgbench prepares
/// every script on every connection, and PostgreSQL plans a prepared statement
/// afresh for its first five executions; with many scripts per connection the
/// anchor would be all planning, a weaker anchor than the database can be (the
/// service keeps one prepared statement per SQL text per connection). 32 calls
/// keep each script well past five executions per connection at concurrency 16.
pub const CALLS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Progress,
    Resolve,
    Submit,
    /// sync-user's `POST /webhooks/learnworlds`: a userUpdated delivery for a
    /// participant, each one a new body (LearnWorlds' deliveries differ).
    Webhook,
    /// sync-user's `POST /sessions`: a participant opening a tool from
    /// LearnWorlds, each launch signed once and used once.
    Launch,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Progress,
        Route::Resolve,
        Route::Submit,
        Route::Webhook,
        Route::Launch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Route::Progress => "get-progress",
            Route::Resolve => "resolve-dependencies",
            Route::Submit => "submit-tool",
            Route::Webhook => "sync-user webhook",
            Route::Launch => "sync-user session launch",
        }
    }

    /// A name for files.
    pub fn slug(self) -> String {
        self.name().replace(' ', "-")
    }
}

/// A bind's value in the pgbench script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Null,
    Value(String),
    /// A value no other request has (a delivery's digest, a launch's
    /// signature): a random number drawn for each pgbench transaction.
    Unique,
}

impl From<Option<String>> for Bind {
    fn from(value: Option<String>) -> Self {
        value.map_or(Bind::Null, Bind::Value)
    }
}

/// One statement with its binds, each with the type sqlx sends it as.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<(Bind, &'static str)>,
}

impl Statement {
    pub fn plain(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            binds: vec![],
        }
    }
}

/// One request of the workload, and the statements it makes the database run.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    pub statements: Vec<Statement>,
}

/// What wrk sends as a call's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    Fixed(String),
    /// Each request replaces `{{N}}` with a text no other request of the
    /// harness has.
    Numbered(String),
    /// Each request takes the next line of its wrk thread's launch file
    /// ([`super::launch_files`]): a signed launch is good for one session.
    Launch,
}

impl Body {
    pub fn fixed(self) -> Option<String> {
        match self {
            Body::Fixed(body) => Some(body),
            _ => None,
        }
    }
}

pub fn bearer(token: String) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

/// A PostgreSQL array literal of text elements.
pub fn pg_array<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| {
            let escaped = s.as_ref().replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// get-progress's read of `user`'s own progress.
pub fn progress_statement(user: Uuid) -> Statement {
    Statement {
        sql: progress::PROGRESS_SQL.to_owned(),
        binds: vec![
            (Bind::Value(user.to_string()), "uuid"),
            (Bind::Value(user.to_string()), "uuid"),
            // The request id, for the audit log (a self-read writes none).
            (Bind::Value("bench".into()), "text"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_escape_quotes_and_backslashes() {
        assert_eq!(pg_array(&["a", "b\"c", "d\\e"]), r#"{"a","b\"c","d\\e"}"#);
        assert_eq!(pg_array::<&str>(&[]), "{}");
    }
}
