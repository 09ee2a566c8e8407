//! What every adapter of a port must do, as one check each adapter's tests run
//! (the in-memory store, SQLite, DynamoDB over moto).

use std::time::Duration;

use ghl_capi::ports::state::StateStore;

/// A record is swapped only from what it holds: one writer of a race wins, a run-out
/// record counts as none.
pub async fn swap_record_holds(state: &impl StateStore) {
    let hour = Duration::from_secs(3600);
    let swap = |expected, text| state.swap_record("replacing#vips", expected, text, hour);
    assert!(swap(None, "one").await.expect("swapped"), "free: taken");
    assert!(!swap(None, "two").await.expect("answered"), "taken already");
    assert!(
        !swap(Some("other"), "two").await.expect("answered"),
        "not what it holds"
    );
    assert!(swap(Some("one"), "two").await.expect("swapped"));
    let kept = state.record("replacing#vips").await.expect("read");
    assert_eq!(kept.as_deref(), Some("two"));
    state
        .set_record("replacing#old", "stale", Duration::ZERO)
        .await
        .expect("written");
    let taken = state
        .swap_record("replacing#old", None, "fresh", hour)
        .await
        .expect("swapped");
    assert!(taken, "a record run out is free");
    let refused = state
        .swap_record("replacing#never", Some("x"), "y", hour)
        .await
        .expect("answered");
    assert!(!refused, "nothing is not what it was said to be");
}
