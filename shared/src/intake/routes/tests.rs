//! The routes, over an in-memory queue and key store.

use super::*;
use crate::ports::queue::MemoryQueue;
use crate::ports::secrets::{Secret, SecretError};

struct Keys(Option<&'static str>);

impl SecretStore for Keys {
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        self.0
            .map(Secret::new)
            .ok_or_else(|| SecretError::unavailable(name, "down"))
    }
    async fn fresh(&self, name: &str) -> Result<Secret, SecretError> {
        self.get(name).await
    }
}

type TestApi = Api<MemoryQueue, Keys, crate::ghl::install::NoInstall>;

fn api(keys: Option<&'static str>, secret: Option<&str>) -> TestApi {
    Api {
        keys: WebhookKeys::ghl_published(),
        window: ReplayWindow::default(),
        apps: AppIds::default(),
        queue: MemoryQueue::default(),
        secrets: Keys(keys),
        conversion_keys_secret: secret.map(str::to_owned),
        allow_unscoped_keys: false,
        warned_unscoped: Default::default(),
        install: crate::ghl::install::NoInstall,
    }
}

fn request<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> Request<'a> {
    Request {
        method,
        path,
        query: None,
        credentials: Credentials {
            authorization: Some("Bearer k1"),
            api_key: None,
            ..Default::default()
        },
        signatures: SignatureHeaders::default(),
        body,
    }
}

async fn status(api: &TestApi, method: &str, path: &str, body: &[u8]) -> u16 {
    api.handle(request(method, path, body), Utc::now())
        .await
        .status
}

#[tokio::test]
async fn an_unsigned_webhook_and_any_without_a_marketplace_app_are_refused_from_their_head() {
    let mut api = api(None, None);
    let head = request("POST", "/webhooks/ghl", b"");
    let refused = api.refuse_early(&head).expect("refused from the head");
    assert_eq!((refused.status, refused.outcome), (401, "no_signature"));
    let huge = vec![b'x'; MAX_BODY_BYTES * 2];
    let answered = api
        .handle(request("POST", "/webhooks/ghl", &huge), Utc::now())
        .await;
    assert_eq!(
        answered.outcome, "no_signature",
        "never sized, parsed or hashed"
    );
    let mut signed = head;
    signed.signatures.ghl = Some("c2ln");
    let no_app = api
        .refuse_early(&signed)
        .expect("no app of ours: none is ours");
    assert_eq!((no_app.status, no_app.outcome), (403, "no_marketplace_app"));
    api.apps = AppIds::parse("app-1");
    assert!(
        api.refuse_early(&signed).is_none(),
        "with an app, a signed one is read and checked"
    );
    assert!(api.refuse_early(&request("GET", "/health", b"")).is_none());
}

#[tokio::test]
async fn routes_answer_by_method_and_path() {
    let api = api(
        Some(r#"[{"id": "k", "key": "k1", "locations": ["loc"]}]"#),
        Some("keys"),
    );
    assert_eq!(status(&api, "GET", "/health", b"").await, 200);
    assert_eq!(status(&api, "GET", "/health/", b"").await, 200);
    assert_eq!(status(&api, "GET", "/webhooks/ghl", b"").await, 405);
    assert_eq!(
        status(&api, "DELETE", "/contacts/c1/conversions", b"").await,
        405
    );
    assert_eq!(status(&api, "POST", "/nowhere", b"").await, 404);
    assert_eq!(
        status(&api, "POST", "/contacts//conversions", b"").await,
        404
    );
    assert_eq!(status(&api, "POST", "/oauth/callback", b"").await, 405);
    let closed = api
        .handle(request("GET", "/oauth/callback", b""), Utc::now())
        .await;
    assert_eq!(closed.status, 404, "no app configured");
    assert!(closed.page.is_some_and(|p| p.contains("GHL_APP_SECRET")));
    let unsigned = api
        .handle(request("POST", "/webhooks/ghl", b"{}"), Utc::now())
        .await;
    assert_eq!((unsigned.status, unsigned.outcome), (401, "no_signature"));
    let body = format!(
        r#"{{"locationId":"loc","eventType":"Lead","timestamp":"{}"}}"#,
        Utc::now().to_rfc3339()
    );
    let posted = api
        .handle(
            request("POST", "/contacts/c1/conversions", body.as_bytes()),
            Utc::now(),
        )
        .await;
    assert_eq!((posted.status, posted.outcome), (202, "accepted"));
    assert_eq!(api.queue.sent().len(), 1);
    assert_eq!(status(&api, "GET", "/workflows/ghl", b"").await, 405);
    let call = br#"{"locationId":"loc","contactId":"c1","workflow":"Booked call"}"#;
    let mut by_header = request("POST", "/workflows/ghl/", call);
    by_header.credentials = Credentials {
        authorization: None,
        api_key: Some("k1"),
        ..Default::default()
    };
    let called = api.handle(by_header, Utc::now()).await;
    assert_eq!((called.status, called.outcome), (200, "accepted"));
    assert!(called.body["eventId"].is_string(), "{:?}", called.body);
    assert_eq!(api.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_workflow_call_with_no_header_carries_its_key_in_the_url_or_its_custom_data() {
    const KEY: &str = "ck_plain_action_key_0123456789";
    let api = api(
        Some(r#"[{"id": "plain", "key": "ck_plain_action_key_0123456789", "locations": ["loc"]}]"#),
        Some("keys"),
    );
    let bare = |path, body| Request {
        credentials: Credentials::default(),
        ..request("POST", path, body)
    };
    let call = br#"{"locationId":"loc","contactId":"c1","workflow":"Booked call"}"#;
    let path = format!("/workflows/ghl/{KEY}");
    let by_url = api.handle(bare(&path, call), Utc::now()).await;
    assert_eq!((by_url.status, by_url.outcome), (200, "accepted"));
    assert_eq!(bare(&path, call).shown_path(), "/workflows/ghl/{key}");
    assert_eq!(bare("/workflows/ghl", call).shown_path(), "/workflows/ghl");
    let wrong = api
        .handle(bare("/workflows/ghl/ck_guess", call), Utc::now())
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(status(&api, "GET", &path, b"").await, 405);

    let carried = format!(
        r#"{{"locationId":"loc","contactId":"c2","workflow":"Booked call","customData":{{"apiKey":"{KEY}","plan":"gold"}}}}"#
    );
    let by_body = api
        .handle(bare("/workflows/ghl", carried.as_bytes()), Utc::now())
        .await;
    assert_eq!((by_body.status, by_body.outcome), (200, "accepted"));
    let at_top =
        format!(r#"{{"locationId":"loc","contactId":"c3","workflow":"w","api_key":"{KEY}"}}"#);
    let top = api
        .handle(bare("/workflows/ghl", at_top.as_bytes()), Utc::now())
        .await;
    assert_eq!(top.status, 200);
    let sent = api.queue.sent();
    assert_eq!(sent.len(), 3);
    for message in &sent {
        assert!(
            !message.body.contains(KEY),
            "a queued job holds the key: {}",
            message.body
        );
    }
    assert!(
        sent[1].body.contains("gold"),
        "the rest of the Custom Data is kept"
    );
    let unkeyed =
        br#"{"locationId":"loc","contactId":"c1","workflow":"w","customData":{"apiKey":""}}"#;
    assert_eq!(
        api.handle(bare("/workflows/ghl", unkeyed), Utc::now())
            .await
            .status,
        401
    );
}

#[test]
fn a_request_shows_neither_its_key_nor_its_body_in_debug_output() {
    let shown = format!(
        "{:?}",
        request("POST", "/contacts/c1/conversions", b"{\"email\":\"a@b.c\"}")
    );
    assert!(!shown.contains("k1") && !shown.contains("a@b.c"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("/contacts/c1"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_keyed_routes_are_closed_without_keys_and_wait_out_a_secret_outage() {
    let body = br#"{"locationId":"loc","eventType":"Lead","timestamp":"2026-01-01T00:00:00Z"}"#;
    let call = br#"{"locationId":"loc","contactId":"c1","workflow":"w"}"#;
    let closed = api(Some("k1"), None);
    let down = api(None, Some("keys"));
    // Each asks its caller to send again in the caller's terms: GHL retries 429.
    for (path, body, retry) in [
        ("/contacts/c1/conversions", &body[..], 503),
        ("/workflows/ghl", &call[..], 429),
    ] {
        assert_eq!(status(&closed, "POST", path, body).await, 404, "{path}");
        assert_eq!(status(&down, "POST", path, body).await, retry, "{path}");
    }
    assert!(closed.queue.sent().is_empty() && down.queue.sent().is_empty());
}

#[tokio::test]
async fn a_key_without_locations_posts_nowhere_unless_unscoped_keys_are_allowed() {
    let body = format!(
        r#"{{"locationId":"loc","eventType":"Lead","timestamp":"{}"}}"#,
        Utc::now().to_rfc3339()
    );
    let mut api = api(Some(r#"["k1"]"#), Some("keys"));
    let refused = api
        .handle(
            request("POST", "/contacts/c1/conversions", body.as_bytes()),
            Utc::now(),
        )
        .await;
    assert_eq!((refused.status, refused.outcome), (403, "forbidden"));
    let said = refused.body.to_string();
    assert!(
        said.contains("names no locations") && said.contains("ALLOW_UNSCOPED_KEYS"),
        "{said}"
    );
    assert!(api.queue.sent().is_empty());
    api.allow_unscoped_keys = true;
    let posted = api
        .handle(
            request("POST", "/contacts/c1/conversions", body.as_bytes()),
            Utc::now(),
        )
        .await;
    assert_eq!(posted.status, 202);
}
