//! Contract test: every Contacts API method of our client against a Prism mock of
//! GHL's own OpenAPI spec (`../shared/ghl/apps/contacts.json`), started by
//! `scripts/test.sh`. Prism answers a request that breaks the spec (a path, the
//! `Authorization` or `Version` header, a missing or mistyped field) with `422`,
//! which fails here naming the call; every example answer of the spec must be
//! readable by our types. (Prism's `--errors` is not used: some of GHL's own
//! examples break GHL's own schemas, e.g. `followers` in the business list.)

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use ghl_capi::ghl::budget::Use;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::contacts_api::{
    ContactInput, CustomFieldInput, Note, NoteInput, SearchRequest, Task, TaskInput,
};
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::ghl::{GhlError, GhlReader, GhlWriter, Related};

const LOCATION: &str = "ve9EPM428h8vShlRW1KT";
const CONTACT: &str = "seD4PfOuKoVMLkEZqohJ";

fn client() -> GhlClient<FixedTokens> {
    let url = std::env::var("PRISM_CONTACTS_URL").expect(
        "PRISM_CONTACTS_URL is not set: run the tests with scripts/test.sh, which starts Prism",
    );
    let tokens = HashMap::from([(LOCATION.to_owned(), LocationToken("pit-contract".into()))]);
    GhlClient::new(&url, FixedTokens(tokens), Duration::from_secs(10)).expect("client")
}

fn contact_input() -> ContactInput {
    ContactInput {
        location_id: Some(LOCATION.into()),
        first_name: Some("Rosan".into()),
        last_name: Some("Deo".into()),
        email: Some("rosan@deos.com".into()),
        phone: Some("+1 888-888-8888".into()),
        country: Some("US".into()),
        tags: Some(vec!["vip".into()]),
        custom_fields: Some(vec![CustomFieldInput {
            id: Some("6dvNaf7VhkQ9snc5vnjJ".into()),
            key: None,
            field_value: "9039160788".into(),
        }]),
        ..ContactInput::default()
    }
}

fn task() -> TaskInput {
    TaskInput {
        title: "Call back".into(),
        body: Some("About the quote".into()),
        due_date: "2026-12-01T10:00:00Z".into(),
        completed: false,
        assigned_to: None,
    }
}

/// Names the call whose request or answer broke the contract.
fn ok<T>(what: &str, result: Result<T, GhlError>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test]
async fn every_contacts_endpoint_matches_ghls_spec() {
    let ghl = client();
    let contact = ok("get", ghl.get_contact(LOCATION, CONTACT).await);
    assert!(!contact.id.is_empty());
    ok("create", ghl.create_contact(&contact_input()).await);
    ok(
        "update",
        ghl.update_contact(LOCATION, CONTACT, &contact_input())
            .await,
    );
    ok("upsert", ghl.upsert_contact(&contact_input()).await);
    ok("delete", ghl.delete_contact(LOCATION, CONTACT).await);
    let search = SearchRequest {
        page: 1,
        page_limit: 20,
        query: Some("deo".into()),
        filters: vec![],
        search_after: None,
        sort: vec![],
    };
    ok(
        "search",
        ghl.search_contacts((LOCATION, Use::Command), &search).await,
    );
    // As reconciliation asks: changed since a moment, oldest change first.
    let since = "2026-11-30T12:00:00Z".parse().expect("time");
    use ghl_capi::pull::listing::{Stamp, by_time};
    let (filters, sort) = by_time(Stamp::Updated, since, None);
    let search = SearchRequest {
        page: 1,
        page_limit: 100,
        query: None,
        filters,
        search_after: None,
        sort,
    };
    ok(
        "search by change",
        ghl.search_contacts((LOCATION, Use::Command), &search).await,
    );
    ok(
        "duplicate",
        ghl.find_duplicate(LOCATION, Some("rosan@deos.com"), None)
            .await,
    );
    ok(
        "by business",
        ghl.contacts_by_business(LOCATION, "641c094001436dbc2081e642", 25, 0)
            .await,
    );
    // The deprecated list: Prism answers every page alike, so take a few.
    let listed: Vec<_> = ok(
        "list",
        ghl.list_contacts(LOCATION, Some("deo"), 1)
            .take(3)
            .try_collect::<Vec<_>>()
            .await,
    );
    assert!(!listed.is_empty());

    let tasks = ok("tasks", ghl.records::<Task>(LOCATION, CONTACT).await);
    assert!(!tasks.is_empty());
    let task_id = "bhJL1GmhVNDEkVYTYc2f";
    ok(
        "task",
        ghl.record::<Task>(LOCATION, (CONTACT, task_id)).await,
    );
    ok(
        "create task",
        ghl.create_record::<Task>(LOCATION, CONTACT, &task()).await,
    );
    ok(
        "update task",
        ghl.update_record::<Task>(LOCATION, (CONTACT, task_id), &task())
            .await,
    );
    ok(
        "complete task",
        ghl.complete_task(LOCATION, (CONTACT, task_id), true).await,
    );
    ok(
        "delete task",
        ghl.delete_record::<Task>(LOCATION, (CONTACT, task_id))
            .await,
    );

    let notes = ok("notes", ghl.records::<Note>(LOCATION, CONTACT).await);
    assert!(!notes.is_empty());
    let note = NoteInput {
        body: "Asked for a quote".into(),
        user_id: None,
    };
    let note_id = "ITZhmWxVuCeY8pOYk4Tr";
    ok(
        "note",
        ghl.record::<Note>(LOCATION, (CONTACT, note_id)).await,
    );
    ok(
        "create note",
        ghl.create_record::<Note>(LOCATION, CONTACT, &note).await,
    );
    ok(
        "update note",
        ghl.update_record::<Note>(LOCATION, (CONTACT, note_id), &note)
            .await,
    );
    ok(
        "delete note",
        ghl.delete_record::<Note>(LOCATION, (CONTACT, note_id))
            .await,
    );

    ok("appointments", ghl.appointments(LOCATION, CONTACT).await);
    let tags = vec!["vip".to_owned()];
    ok("add tags", ghl.add_tags(LOCATION, CONTACT, &tags).await);
    ok(
        "remove tags",
        ghl.remove_tags(LOCATION, CONTACT, &tags).await,
    );

    // Enrichment's reads, through the same client.
    for related in [Related::Notes, Related::Tasks, Related::Appointments] {
        ok("related", ghl.related(LOCATION, CONTACT, related).await);
    }
}

/// The write-back's writes (a tag, custom fields by key and by id, a note, a
/// task) as GHL's spec takes them.
#[tokio::test]
async fn the_write_backs_writes_match_ghls_spec() {
    let ghl = client();
    ok("add tag", ghl.add_tag(LOCATION, CONTACT, "capi:Lead").await);
    // By id, as enrichment writes a key the location's names resolve: GHL's spec
    // requires the id on update (its docs take a key too: the fallback).
    let fields = [
        (
            "3sv6JKpGoWkZLm0xk6lP".to_owned(),
            serde_json::json!("ghl-0123"),
        ),
        ("8ZtTzmFGmi5uMSXKd6Hh".to_owned(), serde_json::json!("7.7")),
    ];
    ok(
        "set fields",
        ghl.set_fields(LOCATION, CONTACT, &fields).await,
    );
    let note =
        "Sent Lead to Meta at 2026-12-06T10:00:00Z, event id ghl-0123, score 7.7. (ghl-capi)";
    ok("add note", ghl.add_note(LOCATION, CONTACT, note).await);
    let task = (
        "Meta could not use this contact's event",
        "too old (ghl-capi)",
    );
    let due = "2026-12-07T10:00:00Z".parse().expect("time");
    ok("add task", ghl.add_task(LOCATION, CONTACT, task, due).await);
}

/// `audience sync`'s searches (by each tag, paged) as GHL's spec takes them.
#[tokio::test]
async fn an_audience_syncs_searches_match_ghls_spec() {
    use ghl_capi::pull::audience_sync::list_members;
    use ghl_capi_tests::fixtures::{audiences, mapping_with};
    let mapping = mapping_with(&audiences(r#"{ env = "ADS_TOKEN" }"#));
    let mut pages = 0;
    let listed = list_members(
        &client(),
        &mapping.audiences[0],
        LOCATION,
        chrono::Utc::now(),
        &mut |_, _| pages += 1,
    )
    .await;
    let listed = listed.unwrap_or_else(|e| panic!("search: {e}"));
    assert!(listed.filtered, "Prism took the tag filter");
    assert!(pages >= 2, "one search per tag");
}
