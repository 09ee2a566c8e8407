//! An audience's whole list replaced (`usersreplace`) against a stand-in that keeps
//! Meta's session rules: one session, batches in order through Meta's trouble
//! (an update in progress, something gone wrong), a session that times out
//! started again without ever sending a first batch twice, one replace at a time,
//! and the session followed to its end.

use std::collections::BTreeSet;
use std::time::Duration;

use ghl_capi::capi::audience::Row;
use ghl_capi::dispatch::replace::{ReplaceError, ReplacePolicy, Step, replace, replacing_key};
use ghl_capi::ports::state::{MemoryState, StateStore};
use ghl_capi_tests::audience_stand_in::AudienceStandIn;
use ghl_capi_tests::fixtures::VIP_AUDIENCE;
use wiremock::MockServer;

use crate::audiences::{TOKEN, client, rows, vips};

/// Meta's rules, on a clock of milliseconds.
fn quick() -> ReplacePolicy {
    ReplacePolicy {
        wait: Duration::from_millis(20),
        tries: 5,
        restarts: 2,
        window: Duration::from_secs(60),
        poll: Duration::from_millis(10),
        poll_for: Duration::from_secs(2),
    }
}

fn as_set(rows: &[Row]) -> BTreeSet<Vec<String>> {
    rows.iter().map(|r| r.0.clone()).collect()
}

#[tokio::test]
async fn a_replace_sends_one_session_in_order_through_metas_trouble_and_follows_it_to_its_end() {
    let server = MockServer::start().await;
    let meta = AudienceStandIn::expecting_token(TOKEN);
    meta.mount(&server, VIP_AUDIENCE).await;
    meta.replace_trouble(1, (2, 1));
    let state = MemoryState::default();
    let members = rows(25_000);
    let mut steps = Vec::new();
    let replaced = replace(
        &client(&server),
        &state,
        &vips(),
        &members,
        quick(),
        &mut |s| steps.push(s),
    )
    .await
    .expect("replaced");
    assert_eq!(
        (replaced.batches, replaced.received, replaced.restarts),
        (3, 25_000, 0)
    );
    assert!(
        replaced.status.is_some_and(|s| s.finished()),
        "followed to its end"
    );
    assert_eq!(meta.members(VIP_AUDIENCE), as_set(&members));
    assert_eq!(meta.breaches(), Vec::<String>::new());
    let sessions = meta.sessions();
    assert_eq!(
        sessions,
        [(replaced.session_id, 25_000, true)],
        "one session"
    );
    assert_eq!(
        steps,
        [
            Step::Sent {
                batch: 1,
                of: 3,
                rows: 10_000
            },
            Step::Sent {
                batch: 2,
                of: 3,
                rows: 20_000
            },
            Step::Sent {
                batch: 3,
                of: 3,
                rows: 25_000
            },
            Step::Waiting,
        ]
    );
    let mark = state.record(&replacing_key("vips")).await.expect("read");
    assert_eq!(mark, None, "the audience's own changes go on");
}

#[tokio::test]
async fn a_session_that_times_out_starts_anew_and_never_sends_a_first_batch_twice() {
    let server = MockServer::start().await;
    let meta = AudienceStandIn::expecting_token(TOKEN);
    meta.mount(&server, VIP_AUDIENCE).await;
    // Batch 2 goes wrong once; by the time it is sent again the session is over.
    meta.session_window(Duration::from_millis(1500));
    meta.replace_trouble(0, (2, 1));
    let policy = ReplacePolicy {
        wait: Duration::from_millis(1600),
        ..quick()
    };
    let members = rows(25_000);
    let replaced = replace(
        &client(&server),
        &MemoryState::default(),
        &vips(),
        &members,
        policy,
        &mut |_| {},
    )
    .await
    .expect("replaced");
    assert_eq!(replaced.restarts, 1);
    assert_eq!(
        meta.breaches(),
        Vec::<String>::new(),
        "no batch 1 sent twice"
    );
    let sessions = meta.sessions();
    assert_eq!(sessions.len(), 2);
    assert!(
        !sessions[0].2 && sessions[1].2,
        "the first timed out, the second finished"
    );
    assert_eq!(meta.members(VIP_AUDIENCE), as_set(&members));
}

#[tokio::test]
async fn one_replace_at_a_time_and_never_an_empty_one() {
    let server = MockServer::start().await;
    let meta = AudienceStandIn::expecting_token(TOKEN);
    meta.mount(&server, VIP_AUDIENCE).await;
    let state = MemoryState::default();
    let hour = Duration::from_secs(3600);
    let mark = replacing_key("vips");
    assert!(
        state
            .swap_record(&mark, None, "since 09:00", hour)
            .await
            .expect("marked")
    );
    let busy = replace(
        &client(&server),
        &state,
        &vips(),
        &rows(3),
        quick(),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(&busy, Err(ReplaceError::Busy { since, .. }) if since == "since 09:00"),
        "{busy:?}"
    );
    assert_eq!(
        state.record(&mark).await.expect("read").as_deref(),
        Some("since 09:00"),
        "the replace under way keeps its mark"
    );
    let empty = replace(
        &client(&server),
        &MemoryState::default(),
        &vips(),
        &[],
        quick(),
        &mut |_| {},
    )
    .await;
    assert!(matches!(empty, Err(ReplaceError::Empty(_))), "{empty:?}");
    assert!(meta.sessions().is_empty(), "Meta was asked nothing");
}
