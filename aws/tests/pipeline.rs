//! End to end on AWS's terms: signed webhooks and a posted conversion go through the
//! three Lambda handlers, over SQS, DynamoDB and Secrets Manager in a real
//! `moto_server`, to a mock GHL and a mock Graph API; what Meta receives is checked
//! event by event, and so are duplicates and injected faults.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use ghl_capi::settings::{DispatchSettings, EnrichSettings, IntakeSettings};
use ghl_capi_aws::lambda::{self, Dispatch, Enrichment, Intake};
use lambda_http::Body;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const LOCATION: &str = "loc1";
const DATASET: &str = "1234567890";
const API_KEY: &str = "ck-test-0123456789";

fn unique(name: &str) -> String {
    format!(
        "{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    )
}

/// What Meta received: every event of every request, and the requests themselves.
#[derive(Clone, Default)]
struct Meta {
    requests: Arc<Mutex<Vec<Value>>>,
    /// Answer `503` to this many requests first.
    outages: Arc<Mutex<u32>>,
}

impl Meta {
    fn events(&self) -> Vec<Value> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|r| r["data"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

impl Respond for Meta {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        {
            let mut outages = self.outages.lock().expect("lock");
            if *outages > 0 {
                *outages -= 1;
                return ResponseTemplate::new(503);
            }
        }
        let body: Value = serde_json::from_slice(&request.body).expect("JSON request");
        let events = body["data"].as_array().cloned().unwrap_or_default();
        // Like Meta: one invalid event refuses the whole request.
        if events.iter().any(|e| e["event_name"] == "Refused") {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "Invalid parameter", "type": "OAuthException", "code": 100,
                "error_user_msg": "The event is refused", "fbtrace_id": "Arefused"}}));
        }
        self.requests.lock().expect("lock").push(body);
        ResponseTemplate::new(200)
            .set_body_json(json!({"events_received": events.len(), "fbtrace_id": "Aok"}))
    }
}

/// A whole stack: queues, table and secrets in moto; GHL and Meta mocked.
struct Stack {
    sqs: aws_sdk_sqs::Client,
    enrich_url: String,
    dispatch_url: String,
    dead_url: String,
    signing: SigningKey,
    intake: Intake,
    enrichment: Enrichment,
    dispatch: Dispatch,
    meta: Meta,
    ghl: MockServer,
    _graph: MockServer,
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    let fifo = name.ends_with(".fifo");
    let mut request = sqs
        .create_queue()
        .queue_name(name)
        // Retried messages come back quickly in tests.
        .attributes(QueueAttributeName::VisibilityTimeout, "1");
    if fifo {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    request.send().await.expect("queue").queue_url.expect("url")
}

async fn stack(mapping: &str) -> Stack {
    let sdk = common::moto_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let id = unique("e2e");
    let enrich_url = create_queue(&sqs, &format!("{id}-enrich.fifo")).await;
    let dispatch_url = create_queue(&sqs, &format!("{id}-dispatch")).await;
    let dead_url = create_queue(&sqs, &format!("{id}-dead")).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = common::state_table(&dynamo).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    for (name, value) in [
        (
            format!("{id}/ghl/{LOCATION}"),
            r#"{"access_token":"at-loc1"}"#.to_owned(),
        ),
        (
            format!("{id}/meta/main"),
            r#"{"access_token":"EAAB-main","app_secret":"s3cret"}"#.to_owned(),
        ),
        (
            format!("{id}/conversion-keys"),
            json!([API_KEY]).to_string(),
        ),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("secret");
    }

    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    let meta = Meta::default();
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{DATASET}/events")))
        .respond_with(meta.clone())
        .mount(&graph)
        .await;

    let signing = SigningKey::from_bytes(&[42u8; 32]);
    let public_pem = signing
        .verifying_key()
        .to_public_key_pem(Default::default())
        .expect("pem");
    let mapping = mapping.replace("{secrets}", &id);
    let vars: HashMap<&str, String> = HashMap::from([
        ("GHL_WEBHOOK_ED25519_PUBLIC_KEY", public_pem),
        ("GHL_WEBHOOK_ACCEPT_RSA", "false".into()),
        (
            "CONVERSION_API_KEYS_SECRET",
            format!("{id}/conversion-keys"),
        ),
        ("ENRICH_QUEUE_URL", enrich_url.clone()),
        ("DISPATCH_QUEUE_URL", dispatch_url.clone()),
        ("DEAD_LETTER_QUEUE_URL", dead_url.clone()),
        ("STATE_TABLE", table),
        ("MAPPING_TOML", mapping),
        ("GHL_API_BASE_URL", ghl.uri()),
        ("GHL_TOKEN_SECRET_PREFIX", format!("{id}/ghl/")),
        ("GRAPH_API_BASE_URL", graph.uri()),
        ("HTTP_TIMEOUT_SECONDS", "5".into()),
    ]);
    let lookup = |name: &str| vars.get(name).cloned();
    let intake = lambda::intake(
        IntakeSettings::from_lookup(lookup).expect("intake settings"),
        &sdk,
    )
    .await
    .expect("intake");
    let enrichment = Enrichment::new(
        EnrichSettings::from_lookup(lookup).expect("enrichment settings"),
        &sdk,
    )
    .await
    .expect("enrichment");
    let dispatch = Dispatch::new(
        DispatchSettings::from_lookup(lookup).expect("dispatch settings"),
        &sdk,
    )
    .await
    .expect("dispatch");
    Stack {
        sqs,
        enrich_url,
        dispatch_url,
        dead_url,
        signing,
        intake,
        enrichment,
        dispatch,
        meta,
        ghl,
        _graph: graph,
    }
}

const MAPPING: &str = r#"
[[pixels]]
name = "main"
dataset_id = "1234567890"
access_token = { secret = "{secrets}/meta/main" }

[[rules]]
name = "lead"
trigger = "contact.created"
event_name = "Lead"

[[rules]]
name = "vip"
trigger = "contact.tag_added"
tags = ["vip"]
event_name = "CompleteRegistration"
needs = []

[[rules]]
name = "won"
trigger = "opportunity.status_changed"
status = "won"
event_name = "Purchase"
value = { field = "opportunity.monetaryValue" }
currency = "EUR"

[[rules]]
name = "posted"
trigger = "conversion.posted"
event_name = { field = "conversion.eventType" }
value = { field = "conversion.value" }
currency = { field = "conversion.currency" }
"#;

fn contact(id: &str, email: &str, tags: &[&str]) -> Value {
    json!({"id": id, "locationId": LOCATION, "email": email, "firstName": "Ann",
        "country": "DE", "tags": tags, "dateAdded": (Utc::now() - Duration::minutes(5)).to_rfc3339(),
        "attributionSource": {"fbclid": "IwAR-abc", "sessionSource": "Paid Social"}})
}

async fn ghl_has(server: &MockServer, contact: &Value) {
    Mock::given(method("GET"))
        .and(path(format!(
            "/contacts/{}",
            contact["id"].as_str().expect("id")
        )))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer at-loc1",
        ))
        .and(wiremock::matchers::header("version", "2021-07-28"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Remaining", "99")
                .set_body_json(json!({"contact": contact})),
        )
        .mount(server)
        .await;
}

fn webhook(kind: &str, webhook_id: &str, fields: Value) -> Vec<u8> {
    let mut body = json!({"type": kind, "locationId": LOCATION, "webhookId": webhook_id,
        "timestamp": Utc::now().to_rfc3339()});
    if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
        body.extend(fields);
    }
    serde_json::to_vec(&body).expect("json")
}

impl Stack {
    async fn post(&self, uri: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut request = lambda_http::http::Request::builder()
            .method("POST")
            .uri(uri);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = lambda::handle_http(
            &self.intake,
            request.body(Body::Binary(body)).expect("request"),
        )
        .await;
        let text = match response.body() {
            Body::Text(t) => t.clone(),
            other => panic!("unexpected body {other:?}"),
        };
        (
            response.status().as_u16(),
            serde_json::from_str(&text).expect("JSON answer"),
        )
    }

    async fn deliver(&self, body: Vec<u8>) -> (u16, Value) {
        let signature = STANDARD.encode(self.signing.sign(&body).to_bytes());
        self.post("/webhooks/ghl", &[("x-ghl-signature", signature)], body)
            .await
    }

    /// Up to 10 messages as Lambda's SQS event, built from the JSON Lambda sends.
    async fn receive(&self, url: &str) -> SqsEvent {
        let messages = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("received")
            .messages
            .unwrap_or_default();
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: HashMap<String, String> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                    "body": m.body(), "attributes": attributes, "messageAttributes": {},
                    "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
            })
            .collect();
        serde_json::from_value(json!({"Records": records})).expect("SQS event")
    }

    async fn delete_done(&self, url: &str, event: &SqsEvent, response: &SqsBatchResponse) {
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &event.records {
            if !failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle.as_deref().unwrap_or_default())
                    .send()
                    .await
                    .expect("deleted");
            }
        }
    }

    /// Runs both consumers as Lambda would (deleting what succeeded) until both
    /// queues stay empty; returns how many batches reported failures.
    async fn drain(&self) -> usize {
        let mut retried = 0;
        let mut idle = 0;
        while idle < 3 {
            let mut busy = false;
            let event = self.receive(&self.enrich_url).await;
            if !event.records.is_empty() {
                busy = true;
                let response = self.enrichment.handle(&event).await;
                retried += usize::from(!response.batch_item_failures.is_empty());
                self.delete_done(&self.enrich_url, &event, &response).await;
            }
            let event = self.receive(&self.dispatch_url).await;
            if !event.records.is_empty() {
                busy = true;
                let response = self.dispatch.handle(&event).await;
                retried += usize::from(!response.batch_item_failures.is_empty());
                self.delete_done(&self.dispatch_url, &event, &response)
                    .await;
            }
            if busy {
                idle = 0;
            } else {
                idle += 1;
                // Retried messages reappear after the 1 s visibility timeout.
                tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            }
        }
        retried
    }

    async fn dead_letters(&self) -> Vec<Value> {
        self.receive(&self.dead_url)
            .await
            .records
            .iter()
            .map(|m| serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("json"))
            .collect()
    }
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn webhooks_and_a_conversion_reach_meta_exactly_once() {
    let _alone = common::ONE_AT_A_TIME.lock().await;
    let emf = common::Emf::start();
    let s = stack(MAPPING).await;
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
    assert_eq!(s.drain().await, 0, "nothing failed");

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

    let requests = s.meta.requests.lock().expect("lock").clone();
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
    let _alone = common::ONE_AT_A_TIME.lock().await;
    let emf = common::Emf::start();
    let s = stack(&format!(
        "{MAPPING}\n[[rules]]\nname = \"refused\"\ntrigger = \"contact.updated\"\nevent_name = \"Refused\"\n"
    ))
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
    // Meta: down for the first two requests.
    *s.meta.outages.lock().expect("lock") = 2;

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
    let signature = STANDARD.encode(s.signing.sign(&forged).to_bytes());
    forged.push(b' ');
    let (status, _) = s
        .post("/webhooks/ghl", &[("x-ghl-signature", signature)], forged)
        .await;
    assert_eq!(status, 401, "a forged body is refused and never queued");

    assert!(s.drain().await > 0, "faults made some batches retry");

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
    assert_eq!(emf.count("GraphRequests", &[("Status", "503")]), 2.0);
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
}
