//! Walking the whole curriculum: each submit unlocks exactly the tools the
//! catalogue says, and program-overview unlocks last.

use serde_json::json;
use sqlx::PgPool;

use crate::TestApp;

/// Submitting each tool in sprint order, and what each submit unlocks. Derived
/// by hand from the program's curriculum, independently of the registry.
pub(crate) const WALK: &[(&str, &[&str])] = &[
    ("woop", &["know-thyself"]),
    ("know-thyself", &["dream", "energy"]),
    ("dream", &["cash", "market-size", "values"]),
    ("values", &["team"]),
    ("team", &["fit"]),
    ("fit", &[]),
    ("cash", &["goals"]),
    ("energy", &[]),
    ("goals", &["focus", "performance"]),
    ("focus", &[]),
    ("performance", &["meeting-rhythm"]),
    ("meeting-rhythm", &[]),
    ("market-size", &["segmentation-target-market"]),
    ("segmentation-target-market", &["target-segment-deep-dive"]),
    ("target-segment-deep-dive", &["value-proposition"]),
    (
        "value-proposition",
        &["product-development", "value-proposition-testing"],
    ),
    ("value-proposition-testing", &[]),
    ("product-development", &["pricing"]),
    ("pricing", &["brand-marketing"]),
    ("brand-marketing", &["customer-service", "route-to-market"]),
    ("customer-service", &[]),
    ("route-to-market", &["core-activities"]),
    ("core-activities", &["processes-decisions"]),
    ("processes-decisions", &["fit-abc-analysis"]),
    ("fit-abc-analysis", &["org-redesign"]),
    (
        "org-redesign",
        &["agile-teams", "digitalization", "employer-branding"],
    ),
    ("employer-branding", &[]),
    ("agile-teams", &[]),
    ("digitalization", &["digital-heart"]),
    ("digital-heart", &["program-overview"]),
    ("program-overview", &[]),
];

/// The catalogue's longest chain.
const CHAIN: [&str; 18] = [
    "woop",
    "know-thyself",
    "dream",
    "market-size",
    "segmentation-target-market",
    "target-segment-deep-dive",
    "value-proposition",
    "product-development",
    "pricing",
    "brand-marketing",
    "route-to-market",
    "core-activities",
    "processes-decisions",
    "fit-abc-analysis",
    "org-redesign",
    "digitalization",
    "digital-heart",
    "program-overview",
];

#[sqlx::test(migrations = false)]
async fn submitting_every_tool_in_turn_unlocks_exactly_the_catalogues_dependents(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    // The walk covers every registry tool, in sprint order.
    let walked: Vec<&str> = WALK.iter().map(|(slug, _)| *slug).collect();
    let registry: Vec<&str> = app
        .registry()
        .tools()
        .iter()
        .map(|t| t.slug.as_str())
        .collect();
    assert_eq!(walked, registry);
    let mut unlock_step = std::collections::HashMap::new();
    for (step, (slug, expected)) in WALK.iter().enumerate() {
        assert_ne!(
            app.status_of(&ana, slug).await,
            "locked",
            "{slug} was still locked when its turn came"
        );
        let response = app.submit_complete(&ana, slug).await;
        assert!(
            response.status == 200 || response.status == 201,
            "{slug}: {:?}",
            response.body
        );
        assert_eq!(
            response.body["unlocked_tools"],
            json!(expected),
            "submitting {slug}"
        );
        for unlocked in *expected {
            unlock_step.insert(*unlocked, step);
        }
        let locked: i64 = sqlx::query_scalar(
            "select count(*) from shared.user_progress where user_id = $1 and status = 'locked'",
        )
        .bind(ana.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let still_to_unlock = WALK[step + 1..].iter().flat_map(|(_, u)| u.iter()).count();
        assert_eq!(locked as usize, still_to_unlock, "after {slug}");
    }
    // program-overview is the last tool to unlock, and it unlocks at the end of the chain.
    let last = unlock_step.iter().max_by_key(|(_, step)| **step).unwrap();
    assert_eq!(*last.0, "program-overview");
    assert!(unlock_step.values().filter(|s| **s == *last.1).count() == 1);
    // Along the 18-tool chain, each tool unlocks only after the one before it is submitted.
    let submitted_at = |slug: &str| WALK.iter().position(|(s, _)| *s == slug).unwrap();
    for pair in CHAIN.windows(2) {
        assert!(
            unlock_step[pair[1]] >= submitted_at(pair[0]),
            "{} unlocked before {} was submitted",
            pair[1],
            pair[0]
        );
    }
    let summary = app.get("/progress", &ana.token).await.body["summary"].clone();
    assert_eq!(
        (
            summary["completed"].as_i64(),
            summary["percentage"].as_i64()
        ),
        (Some(31), Some(100))
    );
}
