//! The local store keeps SQS's promises: durable sends, delays and visibility
//! timeouts, FIFO order per group, deduplication, and reasoned dead letters after
//! too many receives.

use std::time::Duration;

use ghl_capi::ports::queue::{Outgoing, Queue, Sent};
use ghl_capi::ports::state::StateStore;
use ghl_capi_local::ports::{LocalQueue, LocalState};
use ghl_capi_local::store::{DEAD, Store};

const LONG: Duration = Duration::from_secs(60);

fn bodies(store: &Store, max: usize) -> Vec<String> {
    store
        .receive("q", max, LONG, 5)
        .expect("received")
        .into_iter()
        .map(|r| r.body)
        .collect()
}

#[test]
fn messages_survive_a_reopen_and_stay_hidden_while_received() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.db");
    {
        let store = Store::open(&path).expect("open");
        store
            .send("q", "one", (None, None), Duration::ZERO)
            .expect("sent");
        store
            .send("q", "two", (None, None), Duration::ZERO)
            .expect("sent");
    }
    let store = Store::open(&path).expect("reopened");
    let got = store.receive("q", 1, LONG, 5).expect("received");
    assert_eq!(got[0].body, "one");
    assert_eq!(bodies(&store, 10), ["two"], "one is hidden while in hand");
    store.delete(&got[0].message_id).expect("deleted");
    assert_eq!(store.depth("q").expect("depth"), 1);
}

#[tokio::test]
async fn a_repeat_is_told_apart_within_the_window_and_once_its_job_is_done() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    let queue = LocalQueue {
        store: store.clone(),
        name: "q",
    };
    let hook = |id: &str| Outgoing {
        body: "hook".into(),
        group_id: Some("g".into()),
        dedup_id: Some(id.into()),
        delay: None,
    };
    assert_eq!(
        queue.send_once(hook("wh-1")).await.expect("sent"),
        Sent::Queued
    );
    assert_eq!(
        queue.send_once(hook("wh-1")).await.expect("sent"),
        Sent::Repeat
    );
    // Past the five-minute window, a job already done is still a repeat.
    LocalState(store.clone())
        .mark_processed("wh-2")
        .await
        .expect("marked");
    assert_eq!(
        queue.send_once(hook("wh-2")).await.expect("sent"),
        Sent::Repeat
    );
    assert_eq!(
        store.depth("q").expect("depth"),
        1,
        "only the first is queued"
    );
}

#[test]
fn a_retried_message_comes_back_after_its_wait() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    store
        .send("q", "m", (None, None), Duration::ZERO)
        .expect("sent");
    let got = store.receive("q", 10, LONG, 5).expect("received");
    store
        .retry_after(&got[0].message_id, Duration::from_millis(50))
        .expect("retry");
    assert!(bodies(&store, 10).is_empty());
    std::thread::sleep(Duration::from_millis(80));
    let again = store.receive("q", 10, LONG, 5).expect("received");
    assert_eq!((again[0].body.as_str(), again[0].receives), ("m", 2));
}

#[test]
fn a_fifo_group_gives_out_one_message_at_a_time_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    for (body, group) in [("a1", "a"), ("b1", "b"), ("a2", "a")] {
        store
            .send("q", body, (Some(group), None), Duration::ZERO)
            .expect("sent");
    }
    let first = store.receive("q", 10, LONG, 5).expect("received");
    let got: Vec<&str> = first.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(got, ["a1", "b1"], "a2 waits for a1");
    assert!(bodies(&store, 10).is_empty());
    store.delete(&first[0].message_id).expect("deleted");
    assert_eq!(bodies(&store, 10), ["a2"]);
}

#[tokio::test]
async fn a_deduplication_id_is_sent_once() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    let queue = LocalQueue {
        store: store.clone(),
        name: "q",
    };
    for _ in 0..2 {
        queue
            .send(Outgoing {
                body: "hook".into(),
                group_id: Some("g".into()),
                dedup_id: Some("wh-1".into()),
                delay: None,
            })
            .await
            .expect("sent");
    }
    assert_eq!(store.depth("q").expect("depth"), 1);
}

#[tokio::test]
async fn a_message_received_too_often_becomes_a_letter_that_says_why() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    let job = serde_json::json!({"kind": "webhook", "key": "wh-9", "received_at": "2026-12-01T10:00:00Z",
        "body": serde_json::json!({"type": "ContactCreate", "locationId": "loc", "id": "c9"}).to_string()})
    .to_string();
    store
        .send("q", &job, (Some("g"), None), Duration::ZERO)
        .expect("sent");
    // The job was held: its history names the last failure.
    let history = serde_json::json!({"attempts": 2, "last_code": "ghl_no_token",
        "last_cause": "no GHL token is stored for location loc"});
    LocalState(store.clone())
        .set_record("held#wh-9", &history.to_string(), LONG)
        .await
        .expect("kept");
    for _ in 0..2 {
        let got = store.receive("q", 10, LONG, 2).expect("received");
        assert!(got[0].first_received.is_some());
        store
            .retry_after(&got[0].message_id, Duration::ZERO)
            .expect("retry");
    }
    assert!(
        store
            .receive("q", 10, LONG, 2)
            .expect("received")
            .is_empty()
    );
    let dead = store.list(DEAD).expect("listed");
    assert_eq!(dead.len(), 1);
    let letter = ghl_capi::ops::redrive::read(&dead[0].body, Default::default());
    assert_eq!(letter.letter.code, "max_receives");
    assert_eq!(letter.letter.source, "wh-9");
    assert_eq!(letter.letter.triggers, ["ContactCreate"]);
    assert_eq!(letter.letter.history.attempts, 2);
    assert!(letter.letter.history.first_failure.is_some());
    assert!(
        letter
            .letter
            .reason
            .contains("no GHL token is stored for location loc"),
        "{}",
        letter.letter.reason
    );
    assert_eq!(letter.message, job, "the job itself, kept for a redrive");
}

#[test]
fn a_delayed_message_is_not_received_before_its_time() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    store
        .send("q", "later", (None, None), Duration::from_millis(80))
        .expect("sent");
    assert!(bodies(&store, 10).is_empty());
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(bodies(&store, 10), ["later"]);
}

#[tokio::test]
async fn state_keeps_tags_and_processed_jobs() {
    let dir = tempfile::tempdir().expect("dir");
    let state = LocalState(Store::open(&dir.path().join("s.db")).expect("open"));
    assert_eq!(state.tags("loc", "c1").await.expect("read"), None);
    state
        .set_tags("loc", "c1", &["vip".into()])
        .await
        .expect("written");
    assert_eq!(
        state.tags("loc", "c1").await.expect("read"),
        Some(vec!["vip".to_owned()])
    );
    assert!(!state.processed("wh-1").await.expect("read"));
    state.mark_processed("wh-1").await.expect("written");
    assert!(state.processed("wh-1").await.expect("read"));
    state
        .set_record("breaker#meta#main", "open", LONG)
        .await
        .expect("kept");
    assert_eq!(
        state
            .record("breaker#meta#main")
            .await
            .expect("read")
            .as_deref(),
        Some("open")
    );
    state
        .set_record("gone", "soon", Duration::from_millis(1))
        .await
        .expect("kept");
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(state.record("gone").await.expect("read"), None, "run out");
    state
        .delete_record("breaker#meta#main")
        .await
        .expect("deleted");
    assert_eq!(state.record("breaker#meta#main").await.expect("read"), None);
}

#[test]
fn what_a_stopped_run_had_in_hand_is_released_at_the_next_start() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    let store = Store::open(&path).expect("open");
    for body in ["in-hand", "waiting"] {
        store
            .send("q", body, (None, None), Duration::ZERO)
            .expect("sent");
    }
    let got = store.receive("q", 10, LONG, 5).expect("received");
    store
        .retry_after(&got[1].message_id, LONG)
        .expect("delayed");
    drop(store);

    let store = Store::open(&path).expect("reopened");
    assert_eq!(store.release_in_hand().expect("released"), 1);
    assert_eq!(bodies(&store, 10), ["in-hand"], "a retry delay is kept");
}

#[tokio::test]
async fn marks_are_kept_many_at_once_and_several_messages_queue_all_or_none() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    let state = LocalState(store.clone());
    let keys: Vec<String> = (0..50).map(|i| format!("sent#1#e{i}")).collect();
    let marks: Vec<(String, String)> = keys[..30]
        .iter()
        .map(|k| (k.clone(), format!("owner of {k}")))
        .collect();
    state
        .set_records(&marks, Duration::from_secs(60))
        .await
        .expect("written");
    let found = state.records_of(&keys).await.expect("read");
    assert_eq!(found.len(), 30);
    assert_eq!(found["sent#1#e7"], "owner of sent#1#e7");
    let messages: Vec<Outgoing> = (0..4).map(|i| Outgoing::new(format!("m{i}"))).collect();
    store.send_all("q", &messages).expect("queued");
    assert_eq!(bodies(&store, 10), ["m0", "m1", "m2", "m3"]);
}

#[tokio::test]
async fn records_are_listed_by_prefix_and_only_those() {
    let dir = tempfile::tempdir().expect("dir");
    let state = LocalState(Store::open(&dir.path().join("store.db")).expect("open"));
    let keys = [
        "member#vips#loc1#c2",
        "member#vips#loc1#c1",
        "member#vips#loc10#c3",
        "member#vipsx#loc1#c4",
        "member#vips#loc1",
    ];
    let records: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.to_string(), format!("t-{k}")))
        .collect();
    state.set_records(&records, LONG).await.expect("kept");
    state
        .set_records(
            &[("member#vips#loc1#gone".into(), "x".into())],
            Duration::ZERO,
        )
        .await
        .expect("kept");
    let under = state
        .records_under("member#vips#loc1#")
        .await
        .expect("listed");
    let found: Vec<&str> = under.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(found, ["member#vips#loc1#c1", "member#vips#loc1#c2"]);
    assert_eq!(under[0].1, "t-member#vips#loc1#c1");
    assert_eq!(
        state.records_under("").await.expect("all").len(),
        keys.len()
    );
}

#[tokio::test]
async fn a_record_is_swapped_only_from_what_it_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    ghl_capi_tests::contracts::swap_record_holds(&ghl_capi_local::ports::LocalState(store)).await;
}

#[tokio::test]
async fn counters_add_up_from_writers_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    ghl_capi_tests::contracts::counts_add_up(&ghl_capi_local::ports::LocalState(store), true).await;
}

#[tokio::test]
async fn counters_run_out_and_start_again_and_their_rows_are_pruned() {
    use ghl_capi::ports::state::Added;
    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    let state = ghl_capi_local::ports::LocalState(store);
    let added = |n: u64, member: &str| Added {
        counts: vec![("Lead|sent".to_owned(), n)],
        members: vec![("Lead|contacts".to_owned(), vec![member.to_owned()])],
    };
    let key = "report#loc1#2026-11-30".to_owned();
    state
        .add_counts(&key, &added(5, "a"), Duration::ZERO)
        .await
        .expect("added");
    assert!(
        state
            .counts_of(std::slice::from_ref(&key))
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        state
            .counted_under("report#")
            .await
            .expect("listed")
            .is_empty()
    );
    state
        .add_counts(&key, &added(2, "b"), Duration::from_secs(60))
        .await
        .expect("added");
    let read = state
        .counts_of(std::slice::from_ref(&key))
        .await
        .expect("read");
    assert_eq!(read[&key].get("Lead|sent"), Some(&2), "started again at 0");
    assert_eq!(
        read[&key].get("Lead|contacts"),
        Some(&1),
        "the run-out member is gone"
    );
}
