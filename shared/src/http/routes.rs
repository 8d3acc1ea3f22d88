//! The one route table. The Lambda binaries, the local server, the tests (and
//! the SAM template and OpenAPI checks) all read it from here.

use std::sync::OnceLock;

use http::Method;

use crate::foundation::percent::{self, Part};

/// The Lambda function that serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    SyncUser,
    GetProgress,
    ResolveDependencies,
    SubmitTool,
    AuditLog,
    DataRights,
    StaffActions,
    StaffReports,
    Downloads,
}

impl Function {
    pub const ALL: [Function; 9] = [
        Function::SyncUser,
        Function::GetProgress,
        Function::ResolveDependencies,
        Function::SubmitTool,
        Function::AuditLog,
        Function::DataRights,
        Function::StaffActions,
        Function::StaffReports,
        Function::Downloads,
    ];

    /// The binary's name in `functions/`.
    pub fn binary(self) -> &'static str {
        match self {
            Function::SyncUser => "sync-user",
            Function::GetProgress => "get-progress",
            Function::ResolveDependencies => "resolve-dependencies",
            Function::SubmitTool => "submit-tool",
            Function::AuditLog => "audit-log",
            Function::DataRights => "data-rights",
            Function::StaffActions => "staff-actions",
            Function::StaffReports => "staff-reports",
            Function::Downloads => "downloads",
        }
    }

    /// Whether its answers are streamed: it is reached through its own
    /// function URL (response streaming), not through API Gateway.
    pub fn streams(self) -> bool {
        self == Function::Downloads
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    LearnWorldsWebhook,
    CreateSession,
    RefreshSession,
    EndSession,
    ListTools,
    DescribeTool,
    OwnProgress,
    UserProgress,
    ToolDependencies,
    GetSubmission,
    SaveSubmission,
    Me,
    AuditLog,
    ExportOwn,
    ExportUser,
    RequestOwnErasure,
    RequestErasure,
    CancelErasure,
    LiftTombstone,
    GetUser,
    ChangeUser,
    UnlockTool,
    ReopenTool,
    PostComment,
    UserComments,
    OwnComments,
    OwnActivity,
    Organizations,
    Roster,
    OrganizationFunnel,
    Funnel,
    SearchUsers,
    DownloadOwnExport,
    DownloadUserExport,
    DownloadRoster,
}

#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// API Gateway syntax: `{name}` is a path parameter.
    pub path: &'static str,
    pub function: Function,
    pub endpoint: Endpoint,
}

pub static ROUTES: &[Route] = &[
    Route {
        method: Method::POST,
        path: "/webhooks/learnworlds",
        function: Function::SyncUser,
        endpoint: Endpoint::LearnWorldsWebhook,
    },
    Route {
        method: Method::POST,
        path: "/sessions",
        function: Function::SyncUser,
        endpoint: Endpoint::CreateSession,
    },
    Route {
        method: Method::POST,
        path: "/sessions/refresh",
        function: Function::SyncUser,
        endpoint: Endpoint::RefreshSession,
    },
    Route {
        method: Method::POST,
        path: "/sessions/logout",
        function: Function::SyncUser,
        endpoint: Endpoint::EndSession,
    },
    Route {
        method: Method::GET,
        path: "/progress",
        function: Function::GetProgress,
        endpoint: Endpoint::OwnProgress,
    },
    Route {
        method: Method::GET,
        path: "/users/{user_id}/progress",
        function: Function::GetProgress,
        endpoint: Endpoint::UserProgress,
    },
    Route {
        method: Method::GET,
        path: "/tools",
        function: Function::ResolveDependencies,
        endpoint: Endpoint::ListTools,
    },
    Route {
        method: Method::GET,
        path: "/tools/{slug}",
        function: Function::ResolveDependencies,
        endpoint: Endpoint::DescribeTool,
    },
    Route {
        method: Method::GET,
        path: "/tools/{slug}/dependencies",
        function: Function::ResolveDependencies,
        endpoint: Endpoint::ToolDependencies,
    },
    Route {
        method: Method::GET,
        path: "/tools/{slug}/submission",
        function: Function::SubmitTool,
        endpoint: Endpoint::GetSubmission,
    },
    Route {
        method: Method::PUT,
        path: "/tools/{slug}/submission",
        function: Function::SubmitTool,
        endpoint: Endpoint::SaveSubmission,
    },
    Route {
        method: Method::GET,
        path: "/me",
        function: Function::GetProgress,
        endpoint: Endpoint::Me,
    },
    Route {
        method: Method::GET,
        path: "/audit",
        function: Function::AuditLog,
        endpoint: Endpoint::AuditLog,
    },
    Route {
        method: Method::GET,
        path: "/me/export",
        function: Function::DataRights,
        endpoint: Endpoint::ExportOwn,
    },
    Route {
        method: Method::GET,
        path: "/users/{user_id}/export",
        function: Function::DataRights,
        endpoint: Endpoint::ExportUser,
    },
    Route {
        method: Method::POST,
        path: "/me/erasure",
        function: Function::DataRights,
        endpoint: Endpoint::RequestOwnErasure,
    },
    Route {
        method: Method::POST,
        path: "/users/{user_id}/erasure",
        function: Function::DataRights,
        endpoint: Endpoint::RequestErasure,
    },
    Route {
        method: Method::DELETE,
        path: "/users/{user_id}/erasure",
        function: Function::DataRights,
        endpoint: Endpoint::CancelErasure,
    },
    Route {
        method: Method::POST,
        path: "/tombstones/lift",
        function: Function::DataRights,
        endpoint: Endpoint::LiftTombstone,
    },
    // What staff do (shared::staff), and what a participant sees of it.
    Route {
        method: Method::GET,
        path: "/users/{user_id}",
        function: Function::StaffActions,
        endpoint: Endpoint::GetUser,
    },
    Route {
        method: Method::PATCH,
        path: "/users/{user_id}",
        function: Function::StaffActions,
        endpoint: Endpoint::ChangeUser,
    },
    Route {
        method: Method::POST,
        path: "/users/{user_id}/tools/{slug}/unlock",
        function: Function::StaffActions,
        endpoint: Endpoint::UnlockTool,
    },
    Route {
        method: Method::POST,
        path: "/users/{user_id}/tools/{slug}/reopen",
        function: Function::StaffActions,
        endpoint: Endpoint::ReopenTool,
    },
    Route {
        method: Method::POST,
        path: "/users/{user_id}/tools/{slug}/comments",
        function: Function::StaffActions,
        endpoint: Endpoint::PostComment,
    },
    Route {
        method: Method::GET,
        path: "/users/{user_id}/tools/{slug}/comments",
        function: Function::StaffActions,
        endpoint: Endpoint::UserComments,
    },
    Route {
        method: Method::GET,
        path: "/tools/{slug}/comments",
        function: Function::StaffActions,
        endpoint: Endpoint::OwnComments,
    },
    Route {
        method: Method::GET,
        path: "/me/activity",
        function: Function::StaffActions,
        endpoint: Endpoint::OwnActivity,
    },
    // Staff reports (shared::reports).
    Route {
        method: Method::GET,
        path: "/organizations",
        function: Function::StaffReports,
        endpoint: Endpoint::Organizations,
    },
    Route {
        method: Method::GET,
        path: "/organizations/{organization_id}/members",
        function: Function::StaffReports,
        endpoint: Endpoint::Roster,
    },
    Route {
        method: Method::GET,
        path: "/organizations/{organization_id}/funnel",
        function: Function::StaffReports,
        endpoint: Endpoint::OrganizationFunnel,
    },
    Route {
        method: Method::GET,
        path: "/funnel",
        function: Function::StaffReports,
        endpoint: Endpoint::Funnel,
    },
    Route {
        method: Method::GET,
        path: "/users",
        function: Function::StaffReports,
        endpoint: Endpoint::SearchUsers,
    },
    // Downloads of any size, streamed through the downloads function's URL.
    Route {
        method: Method::GET,
        path: "/downloads/me/export",
        function: Function::Downloads,
        endpoint: Endpoint::DownloadOwnExport,
    },
    Route {
        method: Method::GET,
        path: "/downloads/users/{user_id}/export",
        function: Function::Downloads,
        endpoint: Endpoint::DownloadUserExport,
    },
    Route {
        method: Method::GET,
        path: "/downloads/organizations/{organization_id}/members",
        function: Function::Downloads,
        endpoint: Endpoint::DownloadRoster,
    },
];

/// Whether `function` (`None`: every route, the local server) makes bearer
/// tokens: it serves `POST /sessions` and `POST /sessions/refresh`. Only
/// such a function holds the key that signs them.
pub fn mints_tokens(function: Option<Function>) -> bool {
    ROUTES.iter().any(|route| {
        matches!(
            route.endpoint,
            Endpoint::CreateSession | Endpoint::RefreshSession
        ) && function.is_none_or(|f| f == route.function)
    })
}

/// Whether `function` (or the local server, `None`) hashes LearnWorlds ids and
/// emails with the erasure key: the function that syncs users (it refuses
/// erased people) and the one that serves data rights (it lifts tombstones).
pub fn hashes_erased_people(function: Option<Function>) -> bool {
    ROUTES.iter().any(|route| {
        matches!(
            route.endpoint,
            Endpoint::LearnWorldsWebhook | Endpoint::CreateSession | Endpoint::LiftTombstone
        ) && function.is_none_or(|f| f == route.function)
    })
}

/// The local server's health check; it needs no authentication and no Lambda.
pub const HEALTH_PATH: &str = "/health";

/// The function behind API Gateway's `$default` route, which gets every request
/// no route matches: it answers them with the local server's 404 or 405 (a
/// known path with another method), instead of the gateway's own bare 404.
pub const UNMATCHED: Function = Function::GetProgress;

pub enum Matched<'a> {
    Route(&'a Route, Vec<String>),
    /// The path exists, not with this method.
    WrongMethod(Vec<&'static str>),
    NotFound,
}

/// Matches a request against the route table. Path parameters are returned in
/// order, percent-decoded. Paths match exactly, as API Gateway matches them: a
/// trailing slash is another path.
pub fn match_route(method: &Method, path: &str) -> Matched<'static> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut allowed = Vec::new();
    for (route, pattern) in ROUTES.iter().zip(patterns()) {
        let Some(params) = match_segments(pattern, &segments) else {
            continue;
        };
        if route.method == method {
            return Matched::Route(route, params);
        }
        allowed.push(route.method.as_str());
    }
    if allowed.is_empty() {
        Matched::NotFound
    } else {
        Matched::WrongMethod(allowed)
    }
}

/// Each route's path, split into its segments once: every request is matched
/// against the whole table, and splitting it again each time was most of a
/// staff read's routing.
fn patterns() -> &'static [Vec<&'static str>] {
    static PATTERNS: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    PATTERNS.get_or_init(|| ROUTES.iter().map(|r| r.path.split('/').collect()).collect())
}

/// The parameters, percent-decoded, when `segments` fit `pattern`: as many,
/// each literal equal and each parameter not empty.
fn match_segments(pattern: &[&str], segments: &[&str]) -> Option<Vec<String>> {
    let fits = pattern.len() == segments.len()
        && pattern.iter().zip(segments).all(|(p, s)| {
            if p.starts_with('{') {
                !s.is_empty()
            } else {
                p == s
            }
        });
    if !fits {
        return None;
    }
    pattern
        .iter()
        .zip(segments)
        .filter(|(p, _)| p.starts_with('{'))
        .map(|(_, s)| percent::decode(s, Part::Path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_their_parameters() {
        let Matched::Route(route, params) = match_route(&Method::GET, "/tools/dream/dependencies")
        else {
            panic!("no match")
        };
        assert_eq!(route.endpoint, Endpoint::ToolDependencies);
        assert_eq!(params, ["dream"]);
        let Matched::Route(route, _) = match_route(&Method::GET, "/progress") else {
            panic!("no match")
        };
        assert_eq!(route.endpoint, Endpoint::OwnProgress);
    }

    #[test]
    fn a_known_path_with_another_method_lists_the_allowed_ones() {
        let Matched::WrongMethod(allow) = match_route(&Method::DELETE, "/tools/dream/submission")
        else {
            panic!("expected 405")
        };
        assert_eq!(allow, ["GET", "PUT"]);
    }

    #[test]
    fn unknown_paths_and_paths_with_a_trailing_slash_are_not_found() {
        assert!(matches!(
            match_route(&Method::GET, "/tools/dream/outputs"),
            Matched::NotFound
        ));
        assert!(matches!(
            match_route(&Method::GET, "/tools/dream/"),
            Matched::NotFound
        ));
        assert!(matches!(
            match_route(&Method::GET, "/tools//dependencies"),
            Matched::NotFound
        ));
        assert!(matches!(
            match_route(&Method::GET, "/progress/"),
            Matched::NotFound
        ));
    }

    #[test]
    fn parameters_are_percent_decoded_and_traversal_stays_one_segment() {
        let Matched::Route(_, params) =
            match_route(&Method::GET, "/tools/..%2F..%2Fetc/dependencies")
        else {
            panic!("no match")
        };
        assert_eq!(params, ["../../etc"]);
        assert!(matches!(
            match_route(&Method::GET, "/tools/%zz/dependencies"),
            Matched::NotFound
        ));
        assert!(matches!(
            match_route(&Method::GET, "/tools/%ff/dependencies"),
            Matched::NotFound
        ));
    }
}
