//! The fixture mapping every test shares (`tests/fixtures/mapping.toml`), and the
//! bodies GHL sends, built the way GHL builds them.

use std::path::PathBuf;

use chrono::{Duration, Utc};
use ghl_capi::ghl::oauth::OAuthApp;
use ghl_capi::ghl::tokens::{App, ManagedTokens};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::lease::MemoryLease;
use ghl_capi::ports::secrets::VersionedSecrets;
use ghl_capi::ports::state::MemoryState;
use ghl_capi::settings::GHL_TOKEN_DEFAULT_PREFIX;
use serde_json::{Value, json};

/// The tests' marketplace app: every webhook of [`webhook`] names it.
pub const APP_ID: &str = "test-app";

/// The tests' marketplace app, as intake takes it.
pub fn apps() -> ghl_capi::ghl::webhook::AppIds {
    ghl_capi::ghl::webhook::AppIds::parse(APP_ID)
}

/// The location the fixtures' contacts belong to.
pub const LOCATION: &str = "loc1";
/// The main pixel's dataset.
pub const DATASET: &str = "1234567890";
/// How the fixture refers to the main pixel's token.
pub const MAIN_TOKEN: &str = r#"{ secret = "test/meta/main" }"#;

/// Where the fixture mapping is.
pub fn mapping_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/mapping.toml")
}

/// The fixture mapping's text.
pub fn mapping_text() -> String {
    std::fs::read_to_string(mapping_path()).expect("the fixture mapping is readable")
}

/// An agency's mapping: `base`, then a pixel and its rules, in names, for each of
/// thirty more sub-accounts (`client-0` … `client-29`), commented as a person
/// would: over 50 KB, many times what a deploy parameter held.
pub fn agency_mapping(base: &str) -> String {
    let mut text = base.to_owned();
    for i in 0..30 {
        text.push_str(&format!(
            r#"
# ------------------------------------------------------------------------------
# Client {i}: a sub-account cloned from the agency's snapshot. Its pipeline, stages
# and calendars carry the snapshot's names, so the rules below name them.
[[pixels]]
name = "client-{i}"
dataset_id = "9000000000{i:05}"
access_token = {{ secret = "agency/meta/client-{i}" }}
locations = ["client-loc-{i}"]

[[rules]]
name = "client-{i}-lead"
trigger = "opportunity.created"
pipeline = "Sales"
stage = "New"
event_name = "Lead"
pixels = ["client-{i}"]
[rules.custom_data]
lead_source = {{ field = "opportunity.source", default = "unknown" }}

[[rules]]
name = "client-{i}-qualified"
trigger = "opportunity.stage_changed"
pipeline = "Sales"
stage = ["Qualified", "Qualified Lead"]
event_name = "Qualified"
pixels = ["client-{i}"]
# Conversion Leads learns from each stage after the raw lead: this is the second.
[rules.custom_data]
lead_stage = "qualified"
content_name = {{ field = "opportunity.name", default = "deal" }}

[[rules]]
name = "client-{i}-booked"
trigger = "appointment.booked"
calendar = ["Consultation", "Discovery call"]
event_name = "Schedule"
pixels = ["client-{i}"]
[[rules.when]]
field = "custom.How can we help?"
exists = true

[[rules]]
name = "client-{i}-won"
trigger = "opportunity.status_changed"
pipeline = "Sales"
status = "won"
event_name = "Purchase"
value = {{ field = "opportunity.monetaryValue" }}
pixels = ["client-{i}"]

# Client {i}'s best customers, kept in step with its VIP tags and replaced whole
# every week (its ad sets keep their learning).
[[audiences]]
name = "client-{i}-vips"
audience_id = "2385000000{i:05}"
access_token = {{ secret = "agency/meta/client-{i}-ads" }}
locations = ["client-loc-{i}"]
tags = ["vip", "VIP customer"]
mirror_every = "7d"
"#
        ));
    }
    text
}

/// The fixture's text with the main pixel's token kept where `token` says (a
/// `{ secret = … }` or `{ env = … }` table).
pub fn mapping_text_with_token(token: &str) -> String {
    let text = mapping_text();
    assert!(text.contains(MAIN_TOKEN), "the fixture names its token");
    text.replace(MAIN_TOKEN, token)
}

/// A write-back of everything, to put under a rule (`lead`'s, in the tests):
/// its tag, the time, id and score of each event Meta took, a note, and a task
/// for a letter.
pub const WRITE_BACK: &str = r#"[rules.write_back]
tag = "capi:Lead"
note = true
task_on_dead_letter = true
fields = { sent_at = "contact.capi_sent_at", event_id = "contact.capi_event_id", score = "contact.capi_score" }
"#;

/// Rules that would fire on anything a write-back makes: any tag added, any
/// contact update, any note (none may).
pub const WRITE_BACK_WATCHERS: &str = r#"
[[rules]]
name = "any_tag"
trigger = "contact.tag_added"
event_name = "AnyTag"
needs = []

[[rules]]
name = "updated"
trigger = "contact.updated"
event_name = "Updated"
needs = []

[[rules]]
name = "noted"
trigger = "note.created"
event_name = "Noted"
needs = []
"#;

/// `text` (the fixture's, its token wherever) with its `lead` rule writing back
/// everything ([`WRITE_BACK`]), and [`WRITE_BACK_WATCHERS`] after it.
pub fn writing_back(text: &str) -> String {
    let lead = "event_name = \"Lead\"\n";
    assert!(text.contains(lead), "the fixture's lead rule");
    text.replacen(lead, &format!("{lead}{WRITE_BACK}"), 1) + WRITE_BACK_WATCHERS
}

/// The fixture mapping.
pub fn mapping() -> Mapping {
    Mapping::load(&mapping_path()).unwrap_or_else(|e| panic!("{e}"))
}

/// The fixture mapping with `extra` TOML (more rules) after it.
pub fn mapping_with(extra: &str) -> Mapping {
    Mapping::parse(&format!("{}\n{extra}", mapping_text()), "fixture mapping")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Rules on workflow calls, to append to the fixture mapping: GHL's "Booked call"
/// workflow (by name or its id) sends `Schedule` with the call's value; any other
/// workflow that names its event sends it as named.
pub const WORKFLOW_RULES: &str = r#"
[[rules]]
name = "booked"
trigger = "workflow.fired"
workflow = ["Booked call", "wf-booked-1"]
event_name = "Schedule"
value = { field = "workflow.value" }
currency = { field = "workflow.currency", default = "EUR" }
[rules.custom_data]
content_name = { field = "workflow.name" }

[[rules]]
name = "named-event"
trigger = "workflow.fired"
event_name = { field = "workflow.event" }
[[rules.when]]
field = "workflow.event"
exists = true
[[rules.when]]
field = "workflow.refs"
not_equals = "Booked call"
"#;

/// The fixture's Custom Audiences' ids.
pub const VIP_AUDIENCE: &str = "23851234567890123";
pub const WON_AUDIENCE: &str = "23851234567890456";

/// Audiences, to append to the fixture mapping: contacts tagged `vip` or `gold`,
/// and contacts with a won opportunity. `{token}` stands for where their token is
/// kept (`fixtures::audiences(…)`).
const AUDIENCES: &str = r#"
[[audiences]]
name = "vips"
audience_id = "23851234567890123"
access_token = {token}
tags = ["vip", "gold"]

[[audiences]]
name = "won-deals"
audience_id = "23851234567890456"
access_token = {token}
[[audiences.when]]
field = "opportunity.status"
equals = "won"
"#;

/// [`AUDIENCES`] with their token kept where `token` says.
pub fn audiences(token: &str) -> String {
    AUDIENCES.replace("{token}", token)
}

/// A workflow call body from `tests/fixtures/workflows/` (`standard`, `custom`,
/// `variants`; README.md there says what each is and where its facts come from).
pub fn workflow_call(name: &str) -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/workflows/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A contact of [`LOCATION`] as GHL's API and contact webhooks carry it, created
/// five minutes ago, with a Facebook click id.
pub fn contact(id: &str, email: &str, tags: &[&str]) -> Value {
    json!({"id": id, "locationId": LOCATION, "email": email, "firstName": "Ann",
        "country": "DE", "tags": tags, "dateAdded": (Utc::now() - Duration::minutes(5)).to_rfc3339(),
        "attributionSource": {"fbclid": "IwAR-abc", "sessionSource": "Paid Social"}})
}

/// A webhook of `kind` for [`LOCATION`] as GHL delivers it to the tests' app:
/// flat, with its id, the app and the time of sending, and `fields` (the entity)
/// beside them.
pub fn webhook(kind: &str, webhook_id: &str, fields: Value) -> Vec<u8> {
    let mut body = json!({"type": kind, "locationId": LOCATION, "webhookId": webhook_id,
        "appId": APP_ID, "timestamp": Utc::now().to_rfc3339()});
    if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
        body.extend(fields);
    }
    serde_json::to_vec(&body).expect("json")
}

/// [`webhook`], padded with a field of plain letters so that its job (as intake
/// queues it) is about `job_bytes` long: within a hundred bytes of it.
pub fn padded_webhook(kind: &str, webhook_id: &str, fields: Value, job_bytes: usize) -> Vec<u8> {
    let job_len = |body: &[u8]| {
        let job = ghl_capi::jobs::EnrichJob::Webhook {
            key: webhook_id.into(),
            received_at: Utc::now(),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        serde_json::to_string(&job).expect("json").len()
    };
    let mut fields = fields;
    fields["padding"] = "".into();
    let bare = webhook(kind, webhook_id, fields.clone());
    fields["padding"] = "x".repeat(job_bytes.saturating_sub(job_len(&bare))).into();
    webhook(kind, webhook_id, fields)
}

/// The test marketplace app's credentials.
pub fn oauth_app() -> OAuthApp {
    OAuthApp {
        client_id: "app-1".into(),
        client_secret: "shh".into(),
    }
}

/// The secret the test app's credentials are kept in.
pub const APP_SECRET: &str = "test/ghl-app";

/// Token sets in `secrets` where the functions keep them, refreshed with `app`'s
/// credentials (without it, only fixed tokens work).
pub fn tokens_in<S: VersionedSecrets>(
    secrets: S,
    app: Option<App>,
) -> ManagedTokens<S, MemoryLease, MemoryState> {
    ManagedTokens::new(
        secrets,
        MemoryLease::default(),
        MemoryState::default(),
        app,
        GHL_TOKEN_DEFAULT_PREFIX,
    )
}

/// The test app, against GHL at `base_url`, its credentials stored in `secrets`
/// (as the functions find them: read when first needed).
pub async fn app_in(secrets: &impl VersionedSecrets, base_url: &str) -> App {
    let app = oauth_app();
    let credentials = json!({"client_id": app.client_id, "client_secret": app.client_secret});
    secrets
        .put(APP_SECRET, &credentials.to_string())
        .await
        .expect("app credentials stored");
    App {
        secret: APP_SECRET.into(),
        base_url: base_url.into(),
        timeout: std::time::Duration::from_secs(5),
    }
}
