//! What every adapter of a port must do, as one check each adapter's tests run
//! (the in-memory store, SQLite, DynamoDB over moto).

use std::time::Duration;

use ghl_capi::ports::state::{Added, StateStore};

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

/// Counters add up and sets gather distinct members from any number of writers
/// (`at_once`: all in flight together), start at 0, and are read back by key; a
/// key with none is left out; the keys under a prefix are listed.
pub async fn counts_add_up(state: &impl StateStore, at_once: bool) {
    let day = Duration::from_secs(24 * 3600);
    let key = "quality#contract#2026-12-06";
    let add = |n: u64| {
        let added = Added {
            counts: vec![("Lead|sent".to_owned(), n), ("Lead|has:em".to_owned(), 1)],
            // Two writers each name contact c1; every one names its own.
            members: vec![(
                "Lead|contacts".to_owned(),
                vec!["c1".to_owned(), format!("c{n}x")],
            )],
        };
        async move { state.add_counts(key, &added, day).await }
    };
    if at_once {
        let writers: Vec<_> = (1..=8).map(add).collect();
        for written in futures_util::future::join_all(writers).await {
            written.expect("added");
        }
    } else {
        for n in 1..=8 {
            add(n).await.expect("added");
        }
    }
    let other = Added {
        counts: vec![("x".to_owned(), 2)],
        members: Vec::new(),
    };
    state
        .add_counts("quality#contract#other", &other, day)
        .await
        .expect("added");
    let keys = [key.to_owned(), "quality#contract#never".to_owned()];
    let read = state.counts_of(&keys).await.expect("read");
    assert_eq!(
        read.len(),
        1,
        "a key with no counters is left out: {read:?}"
    );
    let counts = &read[key];
    assert_eq!(counts.get("Lead|sent"), Some(&36), "1 + 2 + … + 8");
    assert_eq!(counts.get("Lead|has:em"), Some(&8));
    assert_eq!(
        counts.get("Lead|contacts"),
        Some(&9),
        "c1 once, and eight others"
    );
    assert_eq!(counts.len(), 3);
    let listed = state
        .counted_under("quality#contract#")
        .await
        .expect("listed");
    assert_eq!(
        listed,
        ["quality#contract#2026-12-06", "quality#contract#other"]
    );
}
