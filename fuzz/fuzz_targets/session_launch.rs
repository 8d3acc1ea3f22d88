//! `POST /sessions`: the body parsed strictly, read as a launch, and its
//! signature and age checked, as the route does before touching the database.
//! Every input is also checked once more with a correct signature, so the age
//! check and the fields behind the signature are explored too.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shared::sessions::launch::{self, Launch};
use shared::foundation::config::Secret;
use shared::http::body;
use shared::identity::users::LmsUser;

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = body::parse_json(data) else {
        return;
    };
    let Ok(mut launch) = Launch::from_json(value) else {
        return;
    };
    let secret = Secret::new("fuzz-launch-secret-0123456789");
    let max_age = Duration::from_secs(300);
    let _ = launch::verify_launch(Some(&secret), &launch, NOW, max_age);
    let _ = launch::verify_launch(None, &launch, NOW, max_age);
    // What parses has a valid nonce or none.
    assert!(
        launch.nonce.as_deref().is_none_or(launch::valid_nonce),
        "{launch:?}"
    );
    launch.signature = launch::sign_launch(
        &secret,
        &launch.lms_user_id,
        &launch.email,
        &launch.name,
        launch.timestamp,
        launch.nonce.as_deref(),
    );
    let verified = launch::verify_launch(Some(&secret), &launch, NOW, max_age);
    let fresh = NOW.abs_diff(launch.timestamp) <= 300;
    let one_line = ![&launch.lms_user_id, &launch.email, &launch.name]
        .iter()
        .any(|f| f.contains('\n'));
    assert_eq!(verified.is_ok(), fresh && one_line, "{launch:?}");
    if verified.is_ok() {
        // The signature binds the nonce: dropping it, or adding one, fails.
        let mut other = launch.clone();
        other.nonce = match launch.nonce {
            Some(_) => None,
            None => Some("n".into()),
        };
        assert!(
            launch::verify_launch(Some(&secret), &other, NOW, max_age).is_err(),
            "{launch:?}"
        );
    }
    let user = LmsUser {
        lms_user_id: launch.lms_user_id,
        email: launch.email,
        full_name: launch.name,
        organization: shared::identity::users::Membership::Unchanged,
    };
    if user.validate().is_ok() {
        // What validate() lets through fits the VARCHAR(255) columns it goes into.
        for field in [&user.lms_user_id, &user.email, &user.full_name] {
            assert!(
                field.chars().count() <= 255 && !field.contains('\0'),
                "{user:?}"
            );
        }
    }
});
