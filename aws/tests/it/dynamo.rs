//! The DynamoDB state store against a real `moto_server` (see `scripts/test.sh`).

use aws_sdk_dynamodb::Client;
use ghl_capi::ports::state::StateStore;
use ghl_capi_aws::dynamo::DynamoState;

fn client() -> Client {
    ghl_capi_tests::moto_client!(aws_sdk_dynamodb)
}

async fn table(client: &Client) -> String {
    ghl_capi_tests::moto::state_table(client).await
}

#[tokio::test]
async fn tags_are_remembered_per_contact_and_unknown_contacts_are_none() {
    let client = client();
    let state = DynamoState::new(client.clone(), table(&client).await);
    assert_eq!(state.tags("loc", "c1").await.expect("read"), None);
    state
        .set_tags("loc", "c1", &["vip".into(), "webinar".into()])
        .await
        .expect("written");
    state.set_tags("loc", "c2", &[]).await.expect("written");
    assert_eq!(
        state.tags("loc", "c1").await.expect("read"),
        Some(vec!["vip".into(), "webinar".into()])
    );
    assert_eq!(
        state.tags("loc", "c2").await.expect("read"),
        Some(vec![]),
        "seen, with no tags, is not unseen"
    );
    assert_eq!(
        state.tags("other", "c1").await.expect("read"),
        None,
        "locations do not share contacts"
    );
    state
        .set_tags("loc", "c1", &["vip".into()])
        .await
        .expect("written");
    assert_eq!(
        state.tags("loc", "c1").await.expect("read"),
        Some(vec!["vip".into()])
    );
}

#[tokio::test]
async fn a_missing_table_is_an_error_for_the_caller_to_retry() {
    let state = DynamoState::new(client(), "no-such-table");
    let err = state.tags("loc", "c1").await.unwrap_err();
    assert!(err.to_string().contains("state store failed"), "{err}");
    // A contact's read with its job's mark, and the write of both, alike.
    let err = state.contact("loc", "c1", "w1").await.unwrap_err();
    assert!(err.to_string().contains("state store failed"), "{err}");
    let was = ghl_capi::ports::state::Remembered::default();
    let err = (state.set_tags_done("loc", "c1", &[], "w1", &was).await).unwrap_err();
    assert!(err.to_string().contains("state store failed"), "{err}");
}

#[tokio::test]
async fn a_job_marked_done_stays_done_and_expires_in_time() {
    let client = client();
    let name = table(&client).await;
    let state = DynamoState::new(client.clone(), &name);
    assert!(!state.processed("wh-1").await.expect("read"));
    state.mark_processed("wh-1").await.expect("written");
    assert!(state.processed("wh-1").await.expect("read"));
    assert!(!state.processed("wh-2").await.expect("read"));

    let item = client
        .get_item()
        .table_name(&name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("done#wh-1".into()),
        )
        .send()
        .await
        .expect("read")
        .item
        .expect("item");
    let expires: u64 = item["expires_at"]
        .as_n()
        .expect("number")
        .parse()
        .expect("seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        (now + 14 * 24 * 3600..now + 16 * 24 * 3600).contains(&expires),
        "kept past SQS's 14-day retention, then dropped by TTL"
    );
}

#[tokio::test]
async fn records_are_read_with_their_texts_and_written_many_at_once_and_run_out() {
    let client = client();
    let state = DynamoState::new(client.clone(), table(&client).await);
    // More than one BatchGetItem (100) and BatchWriteItem (25) holds.
    let keys: Vec<String> = (0..230).map(|i| format!("sent#1#e{i}")).collect();
    assert!(state.records_of(&keys).await.expect("read").is_empty());
    let hour = std::time::Duration::from_secs(3600);
    let marks = |keys: &[String]| -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.clone(), format!("owner of {k}")))
            .collect()
    };
    state
        .set_records(&marks(&keys[..150]), hour)
        .await
        .expect("written");
    let found = state.records_of(&keys).await.expect("read");
    assert_eq!(found.len(), 150);
    assert_eq!(found["sent#1#e0"], "owner of sent#1#e0");
    assert_eq!(found["sent#1#e149"], "owner of sent#1#e149");
    assert!(!found.contains_key("sent#1#e150"));
    state
        .set_records(&marks(&keys[200..]), std::time::Duration::ZERO)
        .await
        .expect("written");
    assert_eq!(
        state.records_of(&keys[200..]).await.expect("read").len(),
        0,
        "a mark past its time is gone, whatever the table's TTL sweep"
    );
}

#[tokio::test]
async fn one_locations_records_are_listed_by_the_group_index_older_ones_indexed_once() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = client();
    let name = table(&client).await;
    // Written by a build before the index: no group.
    for contact in ["c1", "c2"] {
        client
            .put_item()
            .table_name(&name)
            .item(
                "pk",
                AttributeValue::S(format!("rec#member#vips#loc1#{contact}")),
            )
            .item("text", AttributeValue::S(format!("old {contact}")))
            .send()
            .await
            .expect("written");
    }
    let state = DynamoState::new(client.clone(), &name);
    let hour = std::time::Duration::from_secs(3600);
    state
        .set_records(
            &[
                ("member#vips#loc1#c3".into(), "new c3".into()),
                ("member#vips#loc2#c9".into(), "another location".into()),
                ("mint#loc7".into(), "co1".into()),
            ],
            hour,
        )
        .await
        .expect("written");
    let listed = state
        .records_under("member#vips#loc1#")
        .await
        .expect("listed");
    let texts: Vec<&str> = listed.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["old c1", "old c2", "new c3"],
        "one location's, old and new"
    );
    // Indexed now: a fresh process lists them by the index alone.
    let fresh = DynamoState::new(client.clone(), &name);
    assert_eq!(
        fresh
            .records_under("member#vips#loc1#")
            .await
            .expect("listed"),
        listed
    );
    assert_eq!(
        fresh.records_under("mint#").await.expect("listed"),
        [("mint#loc7".to_owned(), "co1".to_owned())]
    );
}

#[tokio::test]
async fn a_record_is_swapped_only_from_what_it_holds() {
    let client = client();
    let state = DynamoState::new(client.clone(), table(&client).await);
    ghl_capi_tests::contracts::swap_record_holds(&state).await;
}

#[tokio::test]
async fn counters_add_up_and_sets_gather_members() {
    let client = client();
    let state = DynamoState::new(client.clone(), table(&client).await);
    // One writer after another: moto applies an `UpdateItem … ADD` as a read and a
    // write without a lock, so writers at once lose updates there (33 of 36 seen),
    // where DynamoDB applies each ADD atomically, which the adapter relies on.
    ghl_capi_tests::contracts::counts_add_up(&state, false).await;
}

/// A contact webhook's job is marked done in the write that remembers the
/// contact's tags: no `done#` item of its own, found done with the contact, and
/// kept when reconciliation rewrites the tags.
#[tokio::test]
async fn a_contact_jobs_mark_is_kept_with_its_tags() {
    let client = client();
    let state = DynamoState::new(client.clone(), table(&client).await);
    let was = state.contact("loc", "c1", "w1").await.expect("read");
    assert_eq!((was.tags.clone(), was.done), (None, false), "never seen");
    state
        .set_tags_done("loc", "c1", &["vip".into()], "w1", &was)
        .await
        .expect("written");
    let now = state.contact("loc", "c1", "w1").await.expect("read");
    assert_eq!(
        (now.tags.clone(), now.done),
        (Some(vec!["vip".into()]), true)
    );
    assert!(
        !state.processed("w1").await.expect("read"),
        "no item of its own"
    );
    assert!(!state.contact("loc", "c1", "w2").await.expect("read").done);
    state
        .set_tags_done("loc", "c1", &["vip".into(), "gold".into()], "w2", &now)
        .await
        .expect("written");
    // Reconciliation's write keeps the jobs.
    state
        .set_tags("loc", "c1", &["gold".into()])
        .await
        .expect("written");
    for key in ["w1", "w2"] {
        let read = state.contact("loc", "c1", key).await.expect("read");
        assert_eq!((read.tags, read.done), (Some(vec!["gold".into()]), true));
    }
}

/// A job marked apart (before jobs were kept with contacts) is still found done,
/// and a job never done is not, through the week its mark may live.
#[tokio::test]
async fn a_job_marked_before_jobs_were_kept_with_contacts_is_still_found() {
    let client = client();
    let state = DynamoState::new(client.clone(), table(&client).await);
    state
        .set_tags("loc", "c2", &["vip".into()])
        .await
        .expect("written");
    state.mark_processed("old").await.expect("marked");
    let was = state.contact("loc", "c2", "old").await.expect("read");
    assert!(was.done);
    state
        .set_tags_done("loc", "c2", &["vip".into()], "new", &was)
        .await
        .expect("written");
    for (key, done) in [("old", true), ("new", true), ("never", false)] {
        let read = state.contact("loc", "c2", key).await.expect("read");
        assert_eq!(read.done, done, "{key}");
    }
}

/// A contact with many jobs keeps its item within a write unit: the oldest jobs
/// are marked apart, and every one is found done.
#[tokio::test]
async fn jobs_moved_out_of_a_full_contact_stay_done() {
    let client = client();
    let name = table(&client).await;
    let state = DynamoState::new(client.clone(), &name);
    let keys: Vec<String> = (0..30).map(|n| format!("{n:036}")).collect();
    for key in &keys {
        let was = state.contact("loc", "c3", key).await.expect("read");
        assert!(!was.done, "{key}");
        state
            .set_tags_done("loc", "c3", &["vip".into()], key, &was)
            .await
            .expect("written");
    }
    for key in &keys {
        assert!(
            state.contact("loc", "c3", key).await.expect("read").done,
            "{key}"
        );
    }
    assert!(
        state.processed(&keys[0]).await.expect("read"),
        "the oldest, apart"
    );
    let item = client
        .get_item()
        .table_name(&name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("tags#loc#c3".into()),
        )
        .send()
        .await
        .expect("read")
        .item
        .expect("item");
    let kept = item["done"].as_m().expect("map").len();
    assert!((10..30).contains(&kept), "{kept} kept with the contact");
}
