//! End to end on AWS's terms: signed webhooks and a posted conversion go through the
//! three Lambda handlers, over SQS, DynamoDB and Secrets Manager in a real
//! `moto_server`, to a mock GHL and a mock Graph API; what Meta receives is checked
//! event by event, and so are duplicates and injected faults.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use chrono::Utc;
use ghl_capi_tests::fixtures::{self, LOCATION, contact, webhook};
use ghl_capi_tests::signing;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::stack::{API_KEY, ghl_has, stack};

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn webhooks_and_a_conversion_reach_meta_exactly_once() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let s = stack("").await;
    let ann = contact("c-ann", "Ann@Example.com", &[]);
    let bob = contact("c-bob", "bob@example.com", &["vip"]);
    ghl_has(&s.ghl, &ann).await;
    ghl_has(&s.ghl, &bob).await;

    let created = webhook("ContactCreate", "wh-created", ann.clone());
    assert_eq!(s.deliver(created.clone()).await.0, 200);
    assert_eq!(
        s.deliver(created).await.0,
        200,
        "GHL's redelivery is acknowledged"
    );
    // Bob was known without tags; now he has `vip`.
    let mut before = bob.clone();
    before["tags"] = json!([]);
    assert_eq!(
        s.deliver(webhook("ContactUpdate", "wh-bob-0", before))
            .await
            .0,
        200
    );
    assert_eq!(
        s.deliver(webhook("ContactTagUpdate", "wh-tagged", bob.clone()))
            .await
            .0,
        200
    );
    let won = json!({"id": "opp-1", "contactId": "c-bob", "status": "won", "monetaryValue": 1250.5,
        "pipelineId": "p1", "pipelineStageId": "s1", "name": "Deal"});
    assert_eq!(
        s.deliver(webhook("OpportunityStatusUpdate", "wh-won", won))
            .await
            .0,
        200
    );
    let conversion = json!({"locationId": LOCATION, "eventType": "Purchase", "value": 99.0,
        "currency": "USD", "timestamp": Utc::now().to_rfc3339(), "eventId": "order-77"});
    let (status, answer) = s
        .post(
            "/contacts/c-ann/conversions",
            &[("authorization", format!("Bearer {API_KEY}"))],
            serde_json::to_vec(&conversion).expect("json"),
        )
        .await;
    assert_eq!((status, &answer["eventId"]), (202, &json!("order-77")));

    // The first enrichment batch is handled twice, as if SQS redelivered it.
    let first = s.receive(&s.enrich_url).await;
    assert_eq!(
        first.records.len(),
        5,
        "the redelivered webhook was deduplicated by the FIFO queue"
    );
    assert!(
        s.enrichment
            .handle(&first)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        s.enrichment
            .handle(&first)
            .await
            .batch_item_failures
            .is_empty()
    );
    s.delete_done(&s.enrich_url, &first, &SqsBatchResponse::default())
        .await;
    s.drain().await;
    assert_eq!(
        emf.count("Retried", &[("Function", "enrichment")]),
        0.0,
        "nothing failed"
    );

    let mut events = s.meta.events();
    events.sort_by_key(|e| e["event_name"].as_str().unwrap_or_default().to_owned());
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event_name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["CompleteRegistration", "Lead", "Purchase", "Purchase"],
        "{events:#?}"
    );
    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap_or(""), e))
        .collect();
    assert_eq!(by_id.len(), 4, "distinct event ids");

    let lead = &events[1];
    assert_eq!(lead["user_data"]["em"], json!([sha256("ann@example.com")]));
    assert_eq!(lead["user_data"]["external_id"], json!([sha256("c-ann")]));
    assert!(
        lead["user_data"]["fbc"]
            .as_str()
            .unwrap_or("")
            .ends_with(".IwAR-abc")
    );
    assert_eq!(lead["action_source"], "system_generated");
    let posted = by_id["order-77"];
    assert_eq!(
        (
            &posted["custom_data"]["value"],
            &posted["custom_data"]["currency"]
        ),
        (&json!(99.0), &json!("USD"))
    );
    let won = events
        .iter()
        .find(|e| e["custom_data"]["currency"] == "EUR")
        .expect("won");
    assert_eq!(won["custom_data"]["value"], json!(1250.5));

    let requests = s.meta.requests();
    for request in &requests {
        assert_eq!(request["access_token"], "EAAB-main");
        assert_eq!(
            request["appsecret_proof"].as_str().map(str::len),
            Some(64),
            "HMAC-SHA256 of the token, in hex"
        );
    }
    assert!(s.dead_letters().await.is_empty());

    // What CloudWatch is told.
    assert_eq!(emf.count("Requests", &[("Outcome", "accepted")]), 6.0);
    assert_eq!(emf.count("EventsBuilt", &[("EventName", "Purchase")]), 2.0);
    assert_eq!(emf.count("EventsBuilt", &[("EventName", "Lead")]), 1.0);
    assert_eq!(emf.count("EventsSent", &[]), 4.0);
    assert_eq!(
        emf.count("GraphRequests", &[("Status", "200")]),
        requests.len() as f64
    );
    assert_eq!(emf.values("GraphLatency", &[]).len(), requests.len());
    assert_eq!(emf.count("GraphFailures", &[]), 0.0);
    let ghl_calls = s.ghl.received_requests().await.expect("recorded").len();
    assert_eq!(
        emf.count("GhlRequests", &[("Status", "200")]),
        ghl_calls as f64
    );
    assert_eq!(emf.values("GhlLatency", &[]).len(), ghl_calls);
    assert_eq!(
        emf.values("GhlRateLimitRemaining", &[]),
        vec![99.0; ghl_calls]
    );
    let lag = emf.values("EndToEndLag", &[]);
    assert!(
        !lag.is_empty() && lag.iter().all(|l| (0.0..600.0).contains(l)),
        "{lag:?}"
    );
    assert_eq!(emf.count("Records", &[("Function", "enrichment")]), 10.0);
    assert_eq!(
        emf.count("DeadLettered", &[("Reason", "contact_not_found")]),
        0.0
    );
}

#[tokio::test]
async fn under_injected_faults_every_accepted_webhook_reaches_meta_or_a_dead_letter() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let s = stack(
        "\n[[rules]]\nname = \"refused\"\ntrigger = \"contact.updated\"\nevent_name = \"Refused\"\n",
    )
    .await;
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    // GHL: one rate limit first, then the contact; another contact is gone.
    Mock::given(method("GET"))
        .and(path("/contacts/c-late"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("X-RateLimit-Interval-Milliseconds", "1000"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.ghl)
        .await;
    let late = contact("c-late", "late@example.com", &[]);
    ghl_has(&s.ghl, &late).await;
    Mock::given(method("GET"))
        .and(path_regex("^/contacts/c-gone$"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&s.ghl)
        .await;
    // Meta: down for the first three requests (enough to pause the pixel).
    s.meta.fail_next(3);

    let accepted = [
        ("wh-ann", webhook("ContactCreate", "wh-ann", ann.clone())),
        ("wh-late", webhook("ContactCreate", "wh-late", late)),
        (
            "wh-gone",
            webhook(
                "ContactCreate",
                "wh-gone",
                contact("c-gone", "g@example.com", &[]),
            ),
        ),
        ("wh-refused", webhook("ContactUpdate", "wh-refused", ann)),
    ];
    for (_, body) in &accepted {
        assert_eq!(s.deliver(body.clone()).await.0, 200);
    }
    let mut forged = webhook(
        "ContactCreate",
        "wh-forged",
        contact("c-x", "x@example.com", &[]),
    );
    let signature = signing::sign(&forged);
    forged.push(b' ');
    let (status, _) = s
        .post("/webhooks/ghl", &[("x-ghl-signature", signature)], forged)
        .await;
    assert_eq!(status, 401, "a forged body is refused and never queued");

    assert!(s.drain().await > 0);

    let delivered: Vec<String> = s
        .meta
        .events()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        delivered.len(),
        2,
        "Ann's and the late contact's leads: {delivered:?}"
    );
    let mut dead: Vec<(String, String)> = s
        .dead_letters()
        .await
        .iter()
        .map(|d| {
            (
                d["deadLetter"]["source"].as_str().unwrap_or("").to_owned(),
                d["deadLetter"]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        [
            ("wh-gone".to_owned(), "contact_not_found".to_owned()),
            ("wh-refused".to_owned(), "refused_by_meta".to_owned()),
        ]
    );
    // Every accepted webhook is accounted for: two delivered, two dead-lettered.
    assert_eq!(delivered.len() + dead.len(), accepted.len());

    // And CloudWatch is told of each fault.
    assert_eq!(emf.count("Requests", &[("Outcome", "accepted")]), 4.0);
    assert_eq!(emf.count("Requests", &[("Outcome", "bad_signature")]), 1.0);
    assert_eq!(emf.count("GhlRequests", &[("Status", "429")]), 1.0);
    assert_eq!(emf.count("GhlRequests", &[("Status", "404")]), 1.0);
    assert_eq!(emf.count("GraphRequests", &[("Status", "503")]), 3.0);
    assert!(emf.count("GraphRequests", &[("Status", "400")]) >= 1.0);
    assert_eq!(
        emf.count("GraphFailures", &[]),
        emf.count("GraphRequests", &[("Status", "503")])
            + emf.count("GraphRequests", &[("Status", "400")])
    );
    assert_eq!(emf.count("EventsSent", &[]), 2.0);
    assert_eq!(
        emf.count("DeadLettered", &[("Reason", "contact_not_found")]),
        1.0
    );
    assert_eq!(
        emf.count("DeadLettered", &[("Reason", "refused_by_meta")]),
        1.0
    );
    assert!(emf.count("Retried", &[("Function", "enrichment")]) >= 1.0);
    let held = [("Stage", "dispatch"), ("Reason", "meta_unavailable")];
    assert!(
        emf.count("RetryReasons", &held) >= 1.0,
        "Meta's outage held events"
    );
    assert!(emf.count("PartnerPaused", &[("Partner", "meta")]) >= 1.0);
}

#[tokio::test]
async fn workflow_calls_reach_meta_once_with_the_locations_key() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let keys = format!("{}/workflow-keys", ghl_capi_tests::unique("keys"));
    let secrets = aws_sdk_secretsmanager::Client::new(&ghl_capi_tests::moto::sdk_config().await);
    let scoped = json!([{"id": "studio", "key": "ck-studio-0123", "locations": [LOCATION]},
        {"id": "other", "key": "ck-other-0123", "locations": ["loc2"]}]);
    ghl_capi_tests::moto::secret(&secrets, &keys, &scoped.to_string()).await;
    let s = crate::stack::Stack::with(
        ghl_capi_tests::fixtures::WORKFLOW_RULES,
        &[("CONVERSION_API_KEYS_SECRET", keys)],
    )
    .await;
    ghl_has(&s.ghl, &contact("c-ann", "ann@example.com", &[])).await;
    let body = |value: &Value| serde_json::to_vec(value).expect("json");
    let standard = ghl_capi_tests::fixtures::workflow_call("standard");
    let mut custom = ghl_capi_tests::fixtures::workflow_call("custom");
    custom["occurredAt"] = json!(Utc::now().to_rfc3339());
    let studio = [("x-api-key", "ck-studio-0123".to_owned())];
    let bearer = [("authorization", "Bearer ck-studio-0123".to_owned())];

    let (status, answer) = s.post("/workflows/ghl", &studio, body(&standard)).await;
    assert_eq!(status, 200, "{answer}");
    let standard_id = answer["eventId"].clone();
    let (status, again) = s.post("/workflows/ghl", &studio, body(&standard)).await;
    assert_eq!(
        (status, &again["eventId"]),
        (200, &standard_id),
        "GHL's retry"
    );
    let (status, answer) = s.post("/workflows/ghl", &bearer, body(&custom)).await;
    assert_eq!(
        (status, &answer["eventId"]),
        (200, &json!("booked-c-ann-20261120090000"))
    );
    let elsewhere = [("x-api-key", "ck-other-0123".to_owned())];
    let (status, refused) = s.post("/workflows/ghl", &elsewhere, body(&custom)).await;
    assert_eq!(status, 403, "{refused}");
    // GHL's plain Webhook action with no header: the key ends the URL.
    let mut plain = standard.clone();
    plain["contact_id"] = json!("c-plain");
    plain["email"] = json!("plain@example.com");
    let (status, answer) = s
        .post("/workflows/ghl/ck-studio-0123", &[], body(&plain))
        .await;
    assert_eq!(status, 200, "{answer}");
    let plain_id = answer["eventId"].clone();
    assert_eq!(
        s.pending(&s.enrich_url).await,
        3,
        "the retry deduplicated, the refusal never queued"
    );

    s.drain().await;
    let events = s.meta.events();
    let mut ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    ids.sort_unstable();
    let mut expected = [
        standard_id.as_str().expect("id"),
        plain_id.as_str().expect("id"),
        "booked-c-ann-20261120090000",
    ];
    expected.sort_unstable();
    assert_eq!(ids, expected, "{events:#?}");
    let from_custom = events
        .iter()
        .find(|e| e["event_id"] == "booked-c-ann-20261120090000")
        .expect("the custom body's event");
    assert_eq!(
        from_custom["user_data"]["em"],
        json!([sha256("ann@example.com")]),
        "read from GHL: the body carried no attribution"
    );
    assert_eq!(from_custom["custom_data"]["value"], json!(75.0));
    let reads = s.ghl.received_requests().await.expect("recorded");
    assert_eq!(reads.len(), 1, "the standard payload carried its contact");
    assert!(s.dead_letters().await.is_empty());
    assert_eq!(
        emf.count(
            "WorkflowCalls",
            &[("Workflow", "Booked call"), ("Outcome", "fired")]
        ),
        3.0
    );
    assert_eq!(emf.count("Requests", &[("Outcome", "forbidden")]), 1.0);
}

#[tokio::test]
async fn audience_changes_reach_meta_through_the_handlers_once_each_and_in_order() {
    use ghl_capi_tests::audience_stand_in::AudienceStandIn;
    use ghl_capi_tests::fixtures::{VIP_AUDIENCE, audiences};

    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let s = crate::stack::Stack::with(&audiences(r#"{ secret = "{stack}/meta/ads" }"#), &[]).await;
    let ads = format!("{}/meta/ads", s.id);
    ghl_capi_tests::moto::secret(&s.secrets, &ads, r#"{"access_token":"EAAB-ads"}"#).await;
    let meta = AudienceStandIn::expecting_token("EAAB-ads");
    meta.mount(&s.graph, VIP_AUDIENCE).await;
    let mary = |email: &str, tags: &[&str]| contact("c-mary", email, tags);
    let step = async |body: Vec<u8>| {
        assert_eq!(s.deliver(body).await.0, 200);
        s.drain().await;
        meta.taken()
            .iter()
            .map(|t| {
                (
                    t.method.clone(),
                    t.rows.iter().map(|r| r[1].clone()).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let old = sha256("mary@example.com");
    let new = sha256("mary@new.example");
    let added = |email: &str| ("POST".to_owned(), vec![email.to_owned()]);
    let removed = |email: &str| ("DELETE".to_owned(), vec![email.to_owned()]);

    let tagged = webhook("ContactTagUpdate", "w1", mary("mary@example.com", &["vip"]));
    assert_eq!(step(tagged.clone()).await, [added(&old)]);
    assert_eq!(
        step(tagged).await,
        [added(&old)],
        "GHL's retry sends nothing"
    );
    let untagged = webhook("ContactTagUpdate", "w2", mary("mary@example.com", &[]));
    assert_eq!(step(untagged).await, [added(&old), removed(&old)]);
    let back = webhook(
        "ContactTagUpdate",
        "w3",
        mary("mary@example.com", &["gold"]),
    );
    step(back).await;
    let moved = webhook("ContactUpdate", "w4", mary("mary@new.example", &["gold"]));
    let deleted = webhook(
        "ContactDelete",
        "w5",
        json!({"id": "c-mary", "email": "mary@new.example"}),
    );
    step(moved).await;
    assert_eq!(
        step(deleted).await,
        [
            added(&old),
            removed(&old),
            added(&old),
            removed(&old),
            added(&new),
            removed(&new)
        ]
    );
    assert!(meta.members(VIP_AUDIENCE).is_empty());
    assert!(s.dead_letters().await.is_empty());
    let rows = |outcome| {
        emf.count(
            "AudienceRows",
            &[("Audience", "vips"), ("Outcome", outcome)],
        )
    };
    assert_eq!((rows("added"), rows("removed")), (3.0, 3.0));
}

#[tokio::test]
async fn ldu_and_consent_hold_through_the_handlers_and_each_pixels_quality_is_counted() {
    use ghl_capi_tests::audience_stand_in::AudienceStandIn;
    use ghl_capi_tests::fixtures::VIP_AUDIENCE;

    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let extra = r#"
[[rules]]
name = "updated"
trigger = "contact.updated"
event_name = "Contact"
limited_data_use = { field = "contact.state", one_of = ["CA"] }
consent = "dnd"

[[audiences]]
name = "vips"
audience_id = "23851234567890123"
access_token = { secret = "{stack}/meta/ads" }
tags = ["vip"]
limited_data_use = { country = 1, state = 1000 }
consent = "dnd"
"#;
    let s = crate::stack::Stack::with(extra, &[]).await;
    let ads = format!("{}/meta/ads", s.id);
    ghl_capi_tests::moto::secret(&s.secrets, &ads, r#"{"access_token":"EAAB-ads"}"#).await;
    let audience = AudienceStandIn::expecting_token("EAAB-ads");
    audience.mount(&s.graph, VIP_AUDIENCE).await;
    for (id, state, dnd) in [
        ("c-ca", "CA", false),
        ("c-tx", "TX", false),
        ("c-dnd", "CA", true),
    ] {
        let mut person = contact(id, &format!("{id}@example.com"), &["vip"]);
        person["state"] = json!(state);
        person["dnd"] = json!(dnd);
        ghl_has(&s.ghl, &person).await;
        assert_eq!(
            s.deliver(webhook("ContactUpdate", &format!("w-{id}"), person))
                .await
                .0,
            200
        );
    }
    s.drain().await;

    let events = s.meta.events();
    let of = |id: &str| {
        events
            .iter()
            .find(|e| e["user_data"]["external_id"][0] == sha256(id))
    };
    assert!(
        of("c-dnd").is_none(),
        "Do Not Disturb: nothing sent: {events:#?}"
    );
    let ca = of("c-ca").expect("c-ca's event");
    assert_eq!(
        (
            &ca["data_processing_options"],
            &ca["data_processing_options_country"],
            &ca["data_processing_options_state"]
        ),
        (&json!(["LDU"]), &json!(0), &json!(0))
    );
    let tx = of("c-tx").expect("c-tx's event");
    assert!(tx.get("data_processing_options").is_none(), "{tx}");
    assert!(
        s.meta
            .requests()
            .iter()
            .all(|r| r["partner_agent"] == "ghl-capi"),
        "every request names its sender"
    );
    assert_eq!(emf.count("Skipped", &[("Reason", "no_consent")]), 1.0);

    // The audience took c-ca and c-tx, each row limited with California's codes.
    let members = audience.members(VIP_AUDIENCE);
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members.iter().all(|row| row[13..] == ["LDU", "1", "1000"]),
        "{members:?}"
    );

    // The events Meta took are counted per pixel and event name with their score:
    // in the metrics, and in the state table verify reads.
    let scored = emf.count(
        "ScoredEvents",
        &[("Pixel", "main"), ("EventName", "Contact")],
    );
    let points = emf.count(
        "ScorePoints",
        &[("Pixel", "main"), ("EventName", "Contact")],
    );
    assert_eq!(scored, 2.0);
    // E-mail, click id, external id, first name, state, country: 5.15 each.
    assert_eq!(points, 1030.0);
    let state = ghl_capi_aws::dynamo::DynamoState::new(
        aws_sdk_dynamodb::Client::new(&ghl_capi_tests::moto::sdk_config().await),
        s.vars["STATE_TABLE"].clone(),
    );
    let today = chrono::Utc::now().date_naive();
    let days = ghl_capi::quality::read(&state, fixtures::DATASET, today, today)
        .await
        .expect("read");
    let contact_events = &days[0].1["Contact"];
    assert_eq!((contact_events.sent, contact_events.points), (2, 1030));
    // The report: the location's week, two contacts reached the stage.
    use ghl_capi::quality::report;
    assert_eq!(report::locations(&state).await.expect("listed"), [LOCATION]);
    let lines = report::read(&state, &[LOCATION.to_owned()], today, today)
        .await
        .expect("report");
    let stage = lines
        .iter()
        .find(|l| l.stage == "Contact")
        .expect("the Contact stage");
    assert_eq!(
        (stage.tally.contacts, stage.tally.sent, stage.tally.test),
        (2, 2, 2)
    );
}

#[tokio::test]
async fn a_quality_counter_the_table_refuses_loses_only_the_count_never_the_event() {
    use aws_sdk_dynamodb::types::AttributeValue;

    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let s = stack("").await;
    // An item whose counter holds text: DynamoDB refuses to ADD to it, as it would
    // a write throttled past the SDK's retries.
    let today = chrono::Utc::now().date_naive();
    let dynamo = aws_sdk_dynamodb::Client::new(&ghl_capi_tests::moto::sdk_config().await);
    dynamo
        .put_item()
        .table_name(&s.vars["STATE_TABLE"])
        .item(
            "pk",
            AttributeValue::S(format!("cnt#quality#{}#{today}", fixtures::DATASET)),
        )
        .item("n:Lead|sent", AttributeValue::S("not a number".into()))
        .send()
        .await
        .expect("put");
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    assert_eq!(
        s.deliver(webhook("ContactCreate", "w-ann", ann)).await.0,
        200
    );
    s.drain().await;

    assert_eq!(s.meta.events().len(), 1, "the Lead went to Meta");
    assert!(s.dead_letters().await.is_empty());
    assert_eq!(
        emf.count("TalliesLost", &[]),
        1.0,
        "the lost count is counted"
    );
    assert_eq!(
        s.meta.requests().len(),
        1,
        "one request: nothing sent again"
    );
}

#[tokio::test]
async fn an_enrichment_batch_queues_its_events_together_and_a_contacts_changes_in_order() {
    use ghl_capi_tests::contacts_stand_in::ContactsStandIn;

    let s = stack("").await;
    let ghl = ContactsStandIn::new(LOCATION);
    ghl.mount(&s.ghl).await;
    // Eight new contacts, and the first one tagged `vip` and then updated as it is.
    for i in 0..8 {
        ghl.create(&format!("c{i}"), &["lead"], Utc::now());
        let body = webhook(
            "ContactCreate",
            &format!("w{i}"),
            ghl.contact(&format!("c{i}")),
        );
        assert_eq!(s.deliver(body).await.0, 200);
    }
    ghl.retag("c0", &["lead", "vip"], Utc::now());
    for (kind, id) in [("ContactTagUpdate", "w-tag"), ("ContactUpdate", "w-again")] {
        assert_eq!(s.deliver(webhook(kind, id, ghl.contact("c0"))).await.0, 200);
    }
    let batch = s.receive_up_to(&s.enrich_url, 10).await;
    assert_eq!(batch.records.len(), 10);
    s.calls[1].1.keep();
    let answer = s.enrichment.handle(&batch).await;
    assert!(answer.batch_item_failures.is_empty());
    s.delete_done(&s.enrich_url, &batch, &answer).await;
    let sends = s.calls[1]
        .1
        .take()
        .into_iter()
        .filter(|r| r.operation.starts_with("AmazonSQS.SendMessage"))
        .count();
    // One send for the eight leads; c0's tag, read once they are written down, one
    // of its own: not one a job.
    assert!(sends <= 3, "{sends} sends for 10 jobs");
    s.drain().await;
    let mut names: Vec<String> = (s.meta.events().iter())
        .map(|e| e["event_name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    let leads = vec!["Lead".to_owned(); 8];
    assert_eq!(
        names,
        [vec!["CompleteRegistration".to_owned()], leads].concat(),
        "the tag fires once: the update after it sees it"
    );
}

#[tokio::test]
async fn with_totals_only_no_metric_names_a_pixel_audience_or_workflow() {
    use ghl_capi::telemetry::{Detail, keep_apart};
    use ghl_capi_tests::audience_stand_in::AudienceStandIn;
    use ghl_capi_tests::contacts_stand_in::ContactsStandIn;
    use ghl_capi_tests::fixtures::{VIP_AUDIENCE, workflow_call};

    /// Puts the default back however the test ends, for the tests after it.
    struct Each;
    impl Drop for Each {
        fn drop(&mut self) {
            keep_apart(Detail::Each);
        }
    }
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    keep_apart(Detail::Total);
    let _each = Each;
    let s = crate::stack::Stack::with_mapping(crate::cost::MAPPING, &[]).await;
    let ghl = ContactsStandIn::new(LOCATION);
    ghl.mount(&s.ghl).await;
    let audience = AudienceStandIn::expecting_token("EAAB-main");
    audience.mount(&s.graph, VIP_AUDIENCE).await;

    // A new lead, then tagged (an event, and a member of the audience), then a
    // workflow's call about them.
    ghl.create("c1", &["lead"], Utc::now());
    let created = webhook("ContactCreate", "w1", ghl.contact("c1"));
    assert_eq!(s.deliver(created).await.0, 200);
    s.drain().await;
    ghl.retag("c1", &["lead", "vip"], Utc::now());
    let tagged = webhook("ContactTagUpdate", "w2", ghl.contact("c1"));
    assert_eq!(s.deliver(tagged).await.0, 200);
    let mut call = workflow_call("standard");
    call["contact_id"] = json!("c1");
    let key = [("x-api-key", API_KEY.to_owned())];
    let body = serde_json::to_vec(&call).expect("json");
    let (status, answer) = s.post("/workflows/ghl", &key, body).await;
    assert_eq!(status, 200, "{answer}");
    s.drain().await;
    assert_eq!(s.meta.events().len(), 3);
    assert_eq!(audience.members(VIP_AUDIENCE).len(), 1);

    // Counted in totals by event name and outcome...
    for name in ["Lead", "CompleteRegistration", "Schedule"] {
        assert_eq!(
            emf.count("ScoredEvents", &[("EventName", name)]),
            1.0,
            "{name}"
        );
    }
    assert_eq!(emf.count("AudienceRows", &[("Outcome", "added")]), 1.0);
    assert_eq!(emf.count("WorkflowCalls", &[("Outcome", "fired")]), 1.0);
    // ...and no series names the pixel, the audience or the workflow.
    for line in emf.lines() {
        for many in ["Pixel", "Audience", "Workflow", "Location"] {
            assert!(line.get(many).is_none(), "{line}");
        }
    }
}
