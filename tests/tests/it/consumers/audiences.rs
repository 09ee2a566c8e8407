//! Audience memberships through both stages, over in-memory ports: each change of
//! a contact sends exactly its difference, a repeat sends nothing, order per
//! contact holds through Meta's trouble, and refusals become letters in Meta's
//! words.

use chrono::{DateTime, Duration, Utc};
use ghl_capi::capi::audience::{Operation, Row, UsersRequest};
use ghl_capi::jobs::{DispatchMessage, EnrichJob, LetterMessage};
use ghl_capi::mapping::Mapping;
use ghl_capi::mapping::audience::row;
use ghl_capi::ports::queue::Record;
use ghl_capi_tests::fakes::{FakeGhl, FakeMeta};
use ghl_capi_tests::fixtures::{VIP_AUDIENCE, WON_AUDIENCE, audiences, mapping_with};
use serde_json::{Value, json};

use super::{Stages, ghl, now};

/// Both stages, with what each queue has had taken from it so far.
struct Pipeline {
    mapping: Mapping,
    stages: Stages,
    ghl: FakeGhl,
    meta: FakeMeta,
    /// Dispatch messages taken, and messages put back on the source queue taken.
    taken: (usize, usize),
    /// The time dispatch runs at.
    at: DateTime<Utc>,
}

impl Pipeline {
    fn new() -> Self {
        Pipeline {
            mapping: mapping_with(&audiences(r#"{ env = "ADS_TOKEN" }"#)),
            stages: Stages::default(),
            ghl: ghl(),
            meta: FakeMeta::default(),
            taken: (0, 0),
            at: now(),
        }
    }

    /// Enriches one webhook, then dispatches what it queued (and anything put back
    /// before); the audience requests this made.
    async fn deliver(&mut self, webhook: Value) -> Vec<(String, UsersRequest)> {
        let before = self.meta.audience_requests().len();
        self.enrich(webhook).await;
        self.dispatch().await;
        self.meta.audience_requests().split_off(before)
    }

    async fn enrich(&mut self, webhook: Value) {
        let job = EnrichJob::Webhook {
            key: webhook["webhookId"].as_str().expect("id").to_owned(),
            received_at: now(),
            body: webhook.to_string(),
        };
        let record = Record::new("m", serde_json::to_string(&job).expect("json"));
        let retried = self
            .stages
            .enrich_with(&self.mapping, &self.ghl, &[record], now())
            .await;
        assert!(retried.is_empty(), "enrichment retried {retried:?}");
    }

    /// One dispatch batch of what is waiting on the queues.
    async fn dispatch(&mut self) {
        self.dispatch_from(true, usize::MAX).await;
    }

    /// One dispatch batch of what enrichment queued (or not), and of up to
    /// `held_back` messages dispatch put back, oldest first (the others wait for
    /// a later batch).
    async fn dispatch_from(&mut self, fresh: bool, held_back: usize) {
        let queued = self.stages.dispatch.sent();
        let held = self.stages.source.sent();
        let fresh = if fresh { &queued[self.taken.0..] } else { &[] };
        let waiting = &held[self.taken.1..];
        let held_back = &waiting[..held_back.min(waiting.len())];
        let bodies: Vec<String> = fresh
            .iter()
            .chain(held_back)
            .map(|m| m.body.clone())
            .filter(|b| matches!(DispatchMessage::parse(b), Ok(DispatchMessage::Audience(_))))
            .collect();
        self.taken = (self.taken.0 + fresh.len(), self.taken.1 + held_back.len());
        let records: Vec<Record> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Record::new(format!("d{i}"), body))
            .collect();
        let retried = self
            .stages
            .send_with(&self.mapping, &self.meta, &records, self.at)
            .await;
        assert!(retried.is_empty(), "dispatch retried {retried:?}");
    }

    /// Drops the next message dispatch put back, as if it were lost (or lettered):
    /// its body.
    fn lose_held(&mut self) -> String {
        let held = self.stages.source.sent();
        let lost = held[self.taken.1].body.clone();
        self.taken.1 += 1;
        lost
    }

    /// Dispatches `body` as an operator's redrive puts it back.
    async fn redrive(&mut self, body: &str) {
        let Ok(DispatchMessage::Audience(mut job)) = DispatchMessage::parse(body) else {
            panic!("an audience change")
        };
        job.history = Default::default();
        job.resync = true;
        let record = Record::new("redriven", serde_json::to_string(&job).expect("json"));
        let retried = (self.stages)
            .send_with(&self.mapping, &self.meta, &[record], self.at)
            .await;
        assert!(retried.is_empty(), "dispatch retried {retried:?}");
    }

    /// The operations and rows of audience requests from the `from`th on.
    fn sent_since(&self, from: usize) -> Vec<(Operation, Vec<Row>)> {
        self.meta.audience_requests()[from..]
            .iter()
            .map(|(_, r)| (r.operation, r.rows.clone()))
            .collect()
    }
}

fn contact_webhook(kind: &str, id: &str, email: &str, tags: &[&str]) -> Value {
    json!({"type": kind, "locationId": "loc", "webhookId": id, "timestamp": "2026-11-20T23:00:00Z",
        "id": "c1", "email": email, "firstName": "Mary", "tags": tags})
}

fn row_of(email: &str) -> Row {
    let contact = serde_json::from_value(json!({"id": "c1", "email": email, "firstName": "Mary"}))
        .expect("contact");
    row(&contact)
}

fn only(requests: &[(String, UsersRequest)]) -> (&str, Operation, &[Row]) {
    let [(audience, request)] = requests else {
        panic!("one request, not {requests:?}")
    };
    assert_eq!(request.session, None, "one request needs no session");
    (audience, request.operation, &request.rows)
}

#[tokio::test]
async fn a_contacts_changes_send_exactly_their_difference() {
    let mut pipeline = Pipeline::new();
    let mary = row_of("mary@example.com");

    // First sight of a contact carrying a listed tag: it joins.
    let sent = pipeline
        .deliver(contact_webhook(
            "ContactTagUpdate",
            "w1",
            "mary@example.com",
            &["vip"],
        ))
        .await;
    assert_eq!(
        only(&sent),
        (VIP_AUDIENCE, Operation::Add, &[mary.clone()][..])
    );

    // The same webhook again, and another with nothing new: nothing.
    let again = contact_webhook("ContactTagUpdate", "w1", "mary@example.com", &["vip"]);
    assert!(pipeline.deliver(again).await.is_empty());
    let same = contact_webhook("ContactUpdate", "w2", "mary@example.com", &["VIP", "other"]);
    assert!(pipeline.deliver(same).await.is_empty());

    // A second listed tag changes nothing; the last one removed, it leaves.
    let both = contact_webhook(
        "ContactTagUpdate",
        "w3",
        "mary@example.com",
        &["vip", "gold"],
    );
    assert!(pipeline.deliver(both).await.is_empty());
    let one = contact_webhook("ContactTagUpdate", "w4", "mary@example.com", &["gold"]);
    assert!(pipeline.deliver(one).await.is_empty());
    let none = contact_webhook("ContactTagUpdate", "w5", "mary@example.com", &[]);
    let sent = pipeline.deliver(none).await;
    assert_eq!(
        only(&sent),
        (VIP_AUDIENCE, Operation::Remove, &[mary.clone()][..])
    );

    // Back in, then a new e-mail: the old row out, the new one in.
    let back = contact_webhook("ContactTagUpdate", "w6", "mary@example.com", &["vip"]);
    assert_eq!(only(&pipeline.deliver(back).await).1, Operation::Add);
    let moved = contact_webhook("ContactUpdate", "w7", "mary@new.example", &["vip"]);
    let sent = pipeline.deliver(moved).await;
    let [(_, out), (_, into)] = &sent[..] else {
        panic!("a remove and an add, not {sent:?}")
    };
    assert_eq!(
        (out.operation, &out.rows[..]),
        (Operation::Remove, &[mary][..])
    );
    assert_eq!(
        (into.operation, &into.rows[..]),
        (Operation::Add, &[row_of("mary@new.example")][..])
    );

    // Deleted in GHL: out of every audience it was in.
    let deleted = json!({"type": "ContactDelete", "locationId": "loc", "webhookId": "w8",
        "timestamp": "2026-11-20T23:00:00Z", "id": "c1", "email": "mary@new.example", "tags": ["vip"]});
    let sent = pipeline.deliver(deleted).await;
    assert_eq!(
        only(&sent),
        (
            VIP_AUDIENCE,
            Operation::Remove,
            &[row_of("mary@new.example")][..]
        )
    );
    assert!(pipeline.stages.dead.sent().is_empty());
}

#[tokio::test]
async fn a_won_opportunity_joins_the_condition_audience_and_a_lost_one_leaves() {
    let mut pipeline = Pipeline::new();
    let opportunity = |id: &str, status: &str| {
        json!({"type": "OpportunityStatusUpdate", "locationId": "loc", "webhookId": id,
            "timestamp": "2026-11-20T23:00:00Z", "id": "o1", "contactId": "c1",
            "status": status, "monetaryValue": 10, "pipelineId": "p", "pipelineStageId": "s"})
    };
    let sent = pipeline.deliver(opportunity("o-1", "won")).await;
    let (audience, operation, rows) = only(&sent);
    assert_eq!((audience, operation), (WON_AUDIENCE, Operation::Add));
    let in_ghl = serde_json::from_value(super::contact_json("c1", &[])).expect("contact");
    assert_eq!(rows, [row(&in_ghl)]);
    // A contact change says nothing of opportunities: nothing moves.
    let touched = contact_webhook("ContactUpdate", "w1", "c1@example.com", &[]);
    assert!(pipeline.deliver(touched).await.is_empty());
    let sent = pipeline.deliver(opportunity("o-2", "lost")).await;
    assert_eq!(only(&sent).1, Operation::Remove);
}

#[tokio::test]
async fn an_add_held_by_meta_is_applied_before_the_remove_that_follows_it() {
    let mut pipeline = Pipeline::new();
    pipeline.meta.set_answer(Some((503, "")));
    let joined = contact_webhook("ContactTagUpdate", "w1", "mary@example.com", &["vip"]);
    pipeline.deliver(joined).await;
    let tried = pipeline.meta.audience_requests().len();
    assert_eq!(tried, 1, "the add was tried, and held");
    pipeline.meta.set_answer(None);

    // The remove comes before the held add is back: it waits, unsent.
    let left = contact_webhook("ContactTagUpdate", "w2", "mary@example.com", &[]);
    pipeline.enrich(left).await;
    pipeline.dispatch_from(true, 0).await;
    assert_eq!(pipeline.meta.audience_requests().len(), tried);

    // The add, then the remove, each in a batch of its own.
    pipeline.dispatch_from(false, 1).await;
    pipeline.dispatch_from(false, 1).await;
    let applied: Vec<Operation> = pipeline.meta.audience_requests()[tried..]
        .iter()
        .map(|(_, r)| r.operation)
        .collect();
    assert_eq!(applied, [Operation::Add, Operation::Remove]);
    pipeline.dispatch().await;
    assert_eq!(
        pipeline.meta.audience_requests().len(),
        tried + 2,
        "nothing more"
    );
    assert!(pipeline.stages.dead.sent().is_empty());
}

#[tokio::test]
async fn changes_of_one_contact_in_one_batch_fold_into_their_net() {
    let mut pipeline = Pipeline::new();
    let joined = contact_webhook("ContactTagUpdate", "w1", "mary@example.com", &["vip"]);
    pipeline.enrich(joined).await;
    let moved = contact_webhook("ContactUpdate", "w2", "mary@new.example", &["vip"]);
    pipeline.enrich(moved).await;
    pipeline.dispatch().await;
    let sent = pipeline.meta.audience_requests();
    let shape: Vec<(Operation, Vec<Row>)> = sent
        .iter()
        .map(|(_, r)| (r.operation, r.rows.clone()))
        .collect();
    // Meta never heard of the first row: only the second is sent.
    assert_eq!(shape, [(Operation::Add, vec![row_of("mary@new.example")])]);
}

#[tokio::test]
async fn a_flagged_audience_dead_letters_the_change_in_metas_words() {
    let mut pipeline = Pipeline::new();
    let blocked = json!({"error": {"code": 100, "error_subcode": 1_713_230,
        "message": "Audience Upload Blocked", "fbtrace_id": "AbC"}});
    pipeline
        .meta
        .set_answer(Some((400, blocked.to_string().as_str())));
    let joined = contact_webhook("ContactTagUpdate", "w1", "mary@example.com", &["vip"]);
    pipeline.deliver(joined).await;
    let letters = pipeline.stages.dead.sent();
    let [letter] = &letters[..] else {
        panic!("one letter, not {letters:?}")
    };
    let letter: LetterMessage = serde_json::from_str(&letter.body).expect("letter");
    assert_eq!(letter.dead_letter.code, "audience_blocked");
    assert!(
        letter
            .dead_letter
            .reason
            .contains("Audience Upload Blocked")
    );
    assert_eq!(letter.dead_letter.rule.as_deref(), Some("audience:vips"));
    assert!(matches!(
        DispatchMessage::parse(&letter.message),
        Ok(DispatchMessage::Audience(_))
    ));
    // A later change of the contact is not stuck behind the refused one.
    pipeline.meta.set_answer(None);
    let left = contact_webhook("ContactTagUpdate", "w2", "mary@example.com", &[]);
    assert_eq!(only(&pipeline.deliver(left).await).1, Operation::Remove);
}

/// Mary joins (change 1, applied); Meta fails her leaving (change 2, held); the
/// held change is then lost; she comes back with a new e-mail (change 3), which
/// waits for change 2.
async fn with_a_gap() -> (Pipeline, String) {
    let mut pipeline = Pipeline::new();
    let joined = contact_webhook("ContactTagUpdate", "w1", "mary@example.com", &["vip"]);
    assert_eq!(only(&pipeline.deliver(joined).await).1, Operation::Add);
    pipeline.meta.set_answer(Some((503, "")));
    let left = contact_webhook("ContactTagUpdate", "w2", "mary@example.com", &[]);
    pipeline.deliver(left).await;
    pipeline.meta.set_answer(None);
    let lost = pipeline.lose_held();
    let back = contact_webhook("ContactTagUpdate", "w3", "mary@new.example", &["vip"]);
    assert!(
        pipeline.deliver(back).await.is_empty(),
        "change 3 waits for change 2"
    );
    (pipeline, lost)
}

#[tokio::test]
async fn a_change_waiting_past_the_bound_for_a_lost_one_sends_the_contacts_current_state() {
    let (mut pipeline, _) = with_a_gap().await;
    let before = pipeline.meta.audience_requests().len();
    // Within the bound it keeps waiting; past it, the contact as it stands is sent.
    pipeline.at = now() + Duration::minutes(30);
    pipeline.dispatch_from(false, 1).await;
    assert_eq!(pipeline.meta.audience_requests().len(), before);
    pipeline.at = now() + Duration::hours(2);
    pipeline.dispatch_from(false, 1).await;
    assert_eq!(
        pipeline.sent_since(before),
        [(Operation::Add, vec![row_of("mary@new.example")])]
    );
    // Healed: the next change goes at once, in order.
    let before = pipeline.meta.audience_requests().len();
    let left = contact_webhook("ContactTagUpdate", "w4", "mary@new.example", &[]);
    let sent = pipeline.deliver(left).await;
    assert_eq!(
        only(&sent),
        (
            VIP_AUDIENCE,
            Operation::Remove,
            &[row_of("mary@new.example")][..]
        )
    );
    assert_eq!(pipeline.meta.audience_requests().len(), before + 1);
    assert!(pipeline.stages.dead.sent().is_empty());
}

#[tokio::test]
async fn a_redriven_change_heals_the_gap_by_sending_the_current_state() {
    let (mut pipeline, lost) = with_a_gap().await;
    let before = pipeline.meta.audience_requests().len();
    pipeline.redrive(&lost).await;
    // Not change 2's remove (Mary is back in): her current row.
    let sent = pipeline.sent_since(before);
    assert_eq!(
        sent.last(),
        Some(&(Operation::Add, vec![row_of("mary@new.example")]))
    );
    // Change 3, back from its wait, was covered: nothing more.
    let before = pipeline.meta.audience_requests().len();
    pipeline.dispatch_from(false, 1).await;
    assert_eq!(pipeline.meta.audience_requests().len(), before);
}

#[tokio::test]
async fn a_sync_heals_the_gap_of_a_contact_whose_membership_it_finds_unchanged() {
    use ghl_capi::jobs::ListedJob;
    use ghl_capi::pull::audience_sync::{Listed, plan};

    let (mut pipeline, _) = with_a_gap().await;
    let contact: ghl_capi::ghl::Contact = serde_json::from_value(json!({"id": "c1",
        "locationId": "loc", "email": "mary@new.example", "firstName": "Mary", "tags": ["vip"]}))
    .expect("contact");
    let listed = Listed {
        members: [("c1".to_owned(), contact)].into(),
        listed: 1,
        ..Listed::default()
    };
    let audience = &pipeline.mapping.audiences[0];
    let plan = plan(&pipeline.stages.state, audience, "loc", listed)
        .await
        .expect("planned");
    assert!(
        plan.join.is_empty(),
        "Mary is in, as the pipeline knows her"
    );
    assert!(plan.gaps.contains("c1"), "but her changes have a gap");
    let jobs: Vec<ListedJob> = plan.jobs("sync-1", "loc", now());
    assert!(jobs.iter().all(|j| j.resync) && jobs.len() == 1, "{jobs:?}");
    let record = Record::new(
        "s1",
        serde_json::to_string(&EnrichJob::Listed(jobs[0].clone())).expect("json"),
    );
    let retried = (pipeline.stages)
        .enrich_with(&pipeline.mapping, &pipeline.ghl, &[record], now())
        .await;
    assert!(retried.is_empty());
    let before = pipeline.meta.audience_requests().len();
    pipeline.dispatch_from(true, 0).await;
    assert_eq!(
        pipeline.sent_since(before),
        [(Operation::Add, vec![row_of("mary@new.example")])]
    );
    // Change 3, back from its wait, was covered: nothing more.
    let before = pipeline.meta.audience_requests().len();
    pipeline.dispatch_from(false, 1).await;
    assert_eq!(pipeline.meta.audience_requests().len(), before);
}

#[tokio::test]
async fn while_an_audience_is_replaced_its_own_changes_wait_and_follow_in_order() {
    use ghl_capi::dispatch::replace::replacing_key;
    use ghl_capi::ports::state::StateStore;

    let mut pipeline = Pipeline::new();
    let marked = pipeline
        .stages
        .state
        .swap_record(
            &replacing_key("vips"),
            None,
            "since now",
            std::time::Duration::from_secs(3600),
        )
        .await
        .expect("marked");
    assert!(marked);
    let joined = contact_webhook("ContactTagUpdate", "w1", "mary@example.com", &["vip"]);
    assert!(
        pipeline.deliver(joined).await.is_empty(),
        "no /users call while the list is replaced"
    );
    let held = pipeline.stages.source.sent();
    let Ok(DispatchMessage::Audience(job)) = DispatchMessage::parse(&held[0].body) else {
        panic!("the change, held: {held:?}")
    };
    assert_eq!(job.history.last_code.as_deref(), Some("audience_replacing"));

    // The replace done, the change follows.
    pipeline
        .stages
        .state
        .delete_record(&replacing_key("vips"))
        .await
        .expect("cleared");
    let before = pipeline.meta.audience_requests().len();
    pipeline.dispatch_from(false, usize::MAX).await;
    let sent = pipeline.meta.audience_requests().split_off(before);
    assert_eq!(
        only(&sent),
        (
            VIP_AUDIENCE,
            Operation::Add,
            &[row_of("mary@example.com")][..]
        )
    );
}
