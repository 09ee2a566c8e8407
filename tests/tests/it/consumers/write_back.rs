//! Delivery written back into GHL, through both stages over in-memory ports: an
//! event Meta took is written back once (tag, fields, note), however often its
//! records come; a letter becomes one task per contact and cause; the writes
//! wait for GHL's budget, are held through its outages and lettered when refused;
//! and nothing the write-back makes fires a rule: its tag, its note, and the
//! `ContactUpdate` echo of its fields.

use std::time::Duration;

use chrono::Utc;
use ghl_capi::ghl::{Contact, GhlError};
use ghl_capi::jobs::{DispatchJob, EnrichJob, LetterMessage};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::queue::{MemoryQueue, Record};
use ghl_capi::ports::state::StateStore;
use ghl_capi_tests::fakes::{FakeGhl, FakeMeta};
use ghl_capi_tests::fixtures::{mapping_text, writing_back};
use serde_json::{Value, json};

use super::{Stages, letters, now, queued};

/// The fixture with its `lead` rule writing back, and rules that would fire on
/// anything the write-back makes.
fn mapping() -> Mapping {
    Mapping::parse(&writing_back(&mapping_text()), "mapping.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn ann() -> Value {
    json!({"id": "c1", "locationId": "loc", "email": "ann@example.com", "phone": "+4915112345678",
        "firstName": "Ann", "dateAdded": "2026-11-20T10:00:00Z", "tags": []})
}

fn ghl() -> FakeGhl {
    FakeGhl::with(&[serde_json::from_value::<Contact>(ann()).expect("contact")])
}

fn webhook(kind: &str, id: &str, fields: Value) -> Record {
    let mut body = json!({"type": kind, "locationId": "loc", "webhookId": id,
        "timestamp": "2026-11-20T23:00:00Z"});
    if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
        body.extend(fields);
    }
    let job = EnrichJob::Webhook {
        key: id.into(),
        received_at: now(),
        body: body.to_string(),
    };
    as_record(&format!("m-{id}"), &job)
}

fn as_record(id: &str, job: &EnrichJob) -> Record {
    let mut record = Record::new(id, serde_json::to_string(job).expect("json"));
    record.group_id = Some(job.group_id());
    record
}

/// Each message `queue` holds from `from` on, as a record of its group.
fn records(queue: &MemoryQueue, from: usize) -> Vec<Record> {
    (queue.sent().iter().enumerate().skip(from))
        .map(|(i, m)| {
            let mut record = Record::new(format!("q{i}"), m.body.clone());
            record.group_id = m.group_id.clone();
            record
        })
        .collect()
}

/// The value a `fields` write set in `contact.capi_{what}`.
fn written(fields: &str, what: &str) -> String {
    let after = format!("contact.capi_{what}=\"");
    let value = fields.split(&after).nth(1).expect("the field written");
    value.split('"').next().unwrap_or_default().to_owned()
}

/// The names of the events enrichment queued from `from` on.
fn built(stages: &Stages, from: usize) -> Vec<String> {
    queued(&stages.dispatch)[from..]
        .iter()
        .map(|j| j.event.event_name.clone())
        .collect()
}

/// Enriches Ann's creation: the dispatch records it made.
async fn created(stages: &Stages, mapping: &Mapping, ghl: &FakeGhl) -> Vec<Record> {
    let created = webhook("ContactCreate", "w1", ann());
    let retried = stages.enrich_with(mapping, ghl, &[created], now()).await;
    assert!(retried.is_empty(), "{retried:?}");
    records(&stages.dispatch, 0)
}

/// The write-back of Ann's lead, as dispatch asks enrichment for it once Meta took it.
async fn write_back_asked(stages: &Stages, mapping: &Mapping, ghl: &FakeGhl) -> Vec<Record> {
    let lead = created(stages, mapping, ghl).await;
    let sent = stages
        .send_with(mapping, &FakeMeta::default(), &lead, now())
        .await;
    assert!(sent.is_empty(), "{sent:?}");
    records(&stages.enrich, 0)
}

#[tokio::test]
async fn a_lead_meta_took_is_written_back_once_and_nothing_written_fires_a_rule() {
    let (mapping, ghl, meta, stages) = (mapping(), ghl(), FakeMeta::default(), Stages::default());
    let lead = created(&stages, &mapping, &ghl).await;
    let jobs: Vec<DispatchJob> = queued(&stages.dispatch);
    assert_eq!(built(&stages, 0), ["Lead"]);
    let write = jobs[0].write_back.as_ref().expect("the lead writes back");
    assert_eq!(
        write.shape.len(),
        16,
        "the contact's shape as the webhook showed it"
    );

    // Meta takes it; SQS brings the record again, and dispatch asks again.
    for _ in 0..2 {
        assert!(
            stages
                .send_with(&mapping, &meta, &lead, now())
                .await
                .is_empty()
        );
    }
    assert_eq!(meta.delivered().len(), 1, "sent once");
    let asked = records(&stages.enrich, 0);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked
            .iter()
            .all(|r| r.group_id.as_deref() == Some("loc:c1:write_back"))
    );

    // Enrichment writes it once: the second is the same job.
    assert!(
        stages
            .enrich_with(&mapping, &ghl, &asked, now())
            .await
            .is_empty()
    );
    let writes = ghl.writes();
    assert_eq!(writes.len(), 3, "{writes:#?}");
    assert_eq!(writes[0], "tag c1 capi:Lead");
    let event_id = jobs[0].event.event_id.clone().expect("an id");
    assert!(
        writes[1].starts_with("fields c1 contact.capi_event_id=\""),
        "{}",
        writes[1]
    );
    assert!(writes[1].contains(&event_id) && writes[1].contains("contact.capi_score=\""));
    assert!(
        writes[2].starts_with("note c1 Sent Lead to Meta at ") && writes[2].ends_with("(ghl-capi)")
    );
    assert!(writes[2].contains(&event_id), "{}", writes[2]);

    // Its record comes once more after GHL took the note but before the job was
    // marked done (a fresh store stands for the lost mark): the note is found.
    let fresh = Stages::default();
    let mut again = asked[0].clone();
    again.receives = 2;
    assert!(
        fresh
            .enrich_with(&mapping, &ghl, &[again], now())
            .await
            .is_empty()
    );
    let notes = ghl
        .writes()
        .iter()
        .filter(|w| w.starts_with("note "))
        .count();
    assert_eq!(notes, 1, "{:#?}", ghl.writes());

    // The echoes: GHL tells of the tag, the fields and the note. None fires a rule.
    let before = queued(&stages.dispatch).len();
    let mut tagged = ann();
    tagged["tags"] = json!(["capi:Lead"]);
    let (score, at) = (written(&writes[1], "score"), written(&writes[1], "sent_at"));
    tagged["customFields"] = json!([{"id": "f1", "value": event_id}, {"id": "f2", "value": score},
        {"id": "f3", "value": at}]);
    let note = writes[2].trim_start_matches("note c1 ");
    let echoes = [
        webhook("ContactTagUpdate", "w2", tagged.clone()),
        webhook("ContactUpdate", "w3", tagged.clone()),
        webhook(
            "NoteCreate",
            "w4",
            json!({"id": "n1", "contactId": "c1", "body": note}),
        ),
    ];
    assert!(
        stages
            .enrich_with(&mapping, &ghl, &echoes, now())
            .await
            .is_empty()
    );
    assert_eq!(
        built(&stages, before),
        Vec::<String>::new(),
        "no rule fired"
    );
    // Its tags are remembered as GHL has them (as reconciliation lists them).
    let kept = stages.state.tags("loc", "c1").await.expect("read");
    assert_eq!(kept, Some(vec!["capi:Lead".to_owned()]));

    // A person's changes still fire: a new phone, a tag, a note of their own.
    let mut edited = tagged.clone();
    edited["phone"] = json!("+4915199999999");
    let mut vip = edited.clone();
    vip["tags"] = json!(["capi:Lead", "gold"]);
    let people = [
        webhook("ContactUpdate", "w5", edited),
        webhook("ContactTagUpdate", "w6", vip),
        webhook(
            "NoteCreate",
            "w7",
            json!({"id": "n2", "contactId": "c1", "body": "Called back"}),
        ),
    ];
    assert!(
        stages
            .enrich_with(&mapping, &ghl, &people, now())
            .await
            .is_empty()
    );
    let mut fired = built(&stages, before);
    fired.sort();
    assert_eq!(
        fired,
        ["AnyTag", "CompleteRegistration", "Noted", "Updated"]
    );
}

/// A lead of `contact` too old for Meta: dispatch letters it before sending.
fn too_old(contact: &str, id: &str) -> Record {
    let mut job: DispatchJob = serde_json::from_value(json!({"pixel": "main", "source": id,
        "rule": "lead", "trigger": "contact.created", "location_id": "loc", "contact_id": contact,
        "event": {"event_name": "Lead", "event_time": (now() - chrono::Duration::days(9)).timestamp(),
            "event_id": id, "action_source": "system_generated", "user_data": {"em": ["abc"]}}}))
    .expect("job");
    job.write_back = mapping().rules[0].write_back.clone();
    Record::new(
        format!("m-{id}"),
        serde_json::to_string(&job).expect("json"),
    )
}

#[tokio::test]
async fn a_letter_becomes_one_task_per_contact_and_cause() {
    let (mapping, ghl, meta, stages) = (mapping(), ghl(), FakeMeta::default(), Stages::default());
    let old = [too_old("c1", "e1"), too_old("c1", "e2")];
    assert!(
        stages
            .send_with(&mapping, &meta, &old, now())
            .await
            .is_empty()
    );
    assert_eq!(letters(&stages).len(), 2);
    let asked = records(&stages.enrich, 0);
    assert_eq!(asked.len(), 2, "one write-back per letter");
    assert!(
        stages
            .enrich_with(&mapping, &ghl, &asked, now())
            .await
            .is_empty()
    );
    let writes = ghl.writes();
    assert_eq!(writes.len(), 1, "one task for the cause: {writes:#?}");
    assert!(
        writes[0].starts_with("task c1 Meta could not use this contact's event: Lead event e1")
    );
    assert!(
        writes[0].contains("cause too_old (ghl-capi)"),
        "{}",
        writes[0]
    );

    // Past its job's own mark (a week), the cause is still remembered.
    let key = "wrote#task#loc#c1#too_old";
    assert!(stages.state.record(key).await.expect("read").is_some());
    let later = Stages::default();
    later
        .state
        .set_record(key, "2026-11-21T00:00:00Z", Duration::from_secs(60))
        .await
        .expect("kept");
    assert!(
        later
            .enrich_with(&mapping, &ghl, &asked[..1], now())
            .await
            .is_empty()
    );
    assert_eq!(ghl.writes().len(), 1);
}

#[tokio::test]
async fn writes_wait_for_ghls_budget_are_held_through_its_outage_and_lettered_when_refused() {
    let (mapping, ghl, stages) = (mapping(), ghl(), Stages::default());
    let asked = write_back_asked(&stages, &mapping, &ghl).await;

    // Real-time reads keep their share of the window: the write waits it out.
    ghl.set_reserved(Some(Duration::from_secs(4)));
    let retried = stages.enrich_with(&mapping, &ghl, &asked, now()).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].after, Some(Duration::from_secs(4)));
    assert_eq!(retried[0].reason.code, "ghl_budget_reserved");
    assert!(ghl.writes().is_empty());

    // GHL down: held, and the location paused; nothing lettered.
    ghl.set_reserved(None);
    ghl.set_failing(Some(GhlError::unavailable(
        "server error",
        "GHL answered 503",
    )));
    let retried = stages.enrich_with(&mapping, &ghl, &asked, now()).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].reason.code, "ghl_unavailable");
    assert!(letters(&stages).is_empty());

    // GHL refuses the write (the app lacks contacts.write): one letter, in words.
    ghl.set_failing(Some(GhlError::Forbidden {
        status: 403,
        message: "The token is not authorized for this scope.".into(),
    }));
    let later = Stages::default();
    assert!(
        later
            .enrich_with(&mapping, &ghl, &asked, Utc::now())
            .await
            .is_empty()
    );
    let letters: Vec<LetterMessage> = letters(&later);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].dead_letter.code, "ghl_forbidden");
    assert!(
        letters[0]
            .dead_letter
            .reason
            .starts_with("GHL refused the write-back of rule lead")
    );
    assert!(
        letters[0].dead_letter.reason.contains("needs the scope"),
        "{}",
        letters[0].dead_letter.reason
    );
    assert!(
        letters[0]
            .dead_letter
            .reason
            .contains("grant locations/customFields.readonly"),
        "a key's hint"
    );
}

#[tokio::test]
async fn a_write_back_ghl_rate_limits_waits_ghls_interval_without_pausing_the_location() {
    let (mapping, ghl, stages) = (mapping(), ghl(), Stages::default());
    let asked = write_back_asked(&stages, &mapping, &ghl).await;
    ghl.set_failing(Some(GhlError::RateLimited {
        retry_after_ms: 7000,
    }));
    let retried = stages.enrich_with(&mapping, &ghl, &asked, now()).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].reason.code, "ghl_rate_limited");
    assert_eq!(retried[0].after, Some(Duration::from_secs(7)));
    // GHL only asked to slow down: the location is not paused, and the write
    // lands on the next try.
    ghl.set_failing(None);
    assert!(
        stages
            .enrich_with(&mapping, &ghl, &asked, now())
            .await
            .is_empty()
    );
    assert_eq!(ghl.writes().len(), 3, "{:#?}", ghl.writes());
}

#[tokio::test]
async fn when_the_enrichment_queue_refuses_the_write_backs_the_event_comes_again_and_asks_again() {
    let (mapping, ghl, meta, stages) = (mapping(), ghl(), FakeMeta::default(), Stages::default());
    let lead = created(&stages, &mapping, &ghl).await;
    stages.enrich.fail_next(1);
    let retried = stages.send_with(&mapping, &meta, &lead, now()).await;
    assert_eq!(
        retried.len(),
        1,
        "Meta took it, but its write-back is not queued"
    );
    assert_eq!(retried[0].reason.code, "enrich_queue_failed");
    assert_eq!(meta.delivered().len(), 1);
    // Its record comes again: found sent, not sent again, and its write-back asked.
    assert!(
        stages
            .send_with(&mapping, &meta, &lead, now())
            .await
            .is_empty()
    );
    assert_eq!(meta.delivered().len(), 1, "sent once");
    let asked = records(&stages.enrich, 0);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        stages
            .enrich_with(&mapping, &ghl, &asked, now())
            .await
            .is_empty()
    );
    assert_eq!(ghl.writes().len(), 3);
}
