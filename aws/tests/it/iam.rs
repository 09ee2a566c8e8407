//! Least privilege, checked against what the code does: every AWS call each
//! handler makes is recorded on its way out (its action and resource), and each
//! must be one its role in `template.yaml` allows, on that resource. An operation
//! added to an adapter without its permission fails here.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use serde_json::Value;

/// The calls one handler made: (IAM action, resource named in the request, and
/// for DynamoDB each partition key it names, `dynamodb:LeadingKeys`); and, once
/// asked to ([`Calls::keep`]), every request as sent, in order, for the cost model.
#[derive(Debug, Clone, Default)]
pub(crate) struct Calls(
    Arc<Mutex<BTreeSet<(String, String, String)>>>,
    Arc<Mutex<Option<Vec<Sent>>>>,
);

/// One request as sent: its operation (`DynamoDB_20120810.PutItem`,
/// `AmazonSQS.SendMessageBatch`, S3's `s3:GET`) and its body.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) operation: String,
    pub(crate) body: Vec<u8>,
}

impl Calls {
    pub(crate) fn seen(&self) -> BTreeSet<(String, String)> {
        let calls = self.0.lock().expect("lock");
        calls
            .iter()
            .map(|(a, r, _)| (a.clone(), r.clone()))
            .collect()
    }

    /// Each (action, resource, partition key) of the DynamoDB calls.
    pub(crate) fn keys(&self) -> BTreeSet<(String, String, String)> {
        let calls = self.0.lock().expect("lock");
        calls
            .iter()
            .filter(|(_, _, k)| !k.is_empty())
            .cloned()
            .collect()
    }

    /// `sdk` with every request it sends recorded here (over plain HTTP, as moto
    /// is reached).
    pub(crate) fn recording(&self, sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        let inner = aws_smithy_http_client::Builder::new().build_http();
        sdk.to_builder()
            .http_client(Recorder {
                inner,
                calls: self.clone(),
            })
            .build()
    }

    /// From now on, every request is kept, body and all, until [`Calls::take`]n
    /// (tests that do not ask keep none: a soak would hold every body it sent).
    pub(crate) fn keep(&self) {
        *self.1.lock().expect("lock") = Some(Vec::new());
    }

    /// Every request kept so far, and none of them kept after.
    pub(crate) fn take(&self) -> Vec<Sent> {
        let mut kept = self.1.lock().expect("lock");
        kept.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn record(&self, request: &HttpRequest) {
        let target = request.headers().get("x-amz-target");
        if let Some(kept) = self.1.lock().expect("lock").as_mut() {
            kept.push(Sent {
                operation: target.map_or_else(|| format!("s3:{}", request.method()), str::to_owned),
                body: request
                    .body()
                    .bytes()
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
            });
        }
        let Some(target) = target else {
            return self.record_s3(request);
        };
        let (service, operation) = target.split_once('.').unwrap_or(("", target));
        let prefix = match service {
            "AmazonSQS" => "sqs",
            s if s.starts_with("DynamoDB") => "dynamodb",
            "secretsmanager" => "secretsmanager",
            other => other,
        };
        // IAM authorises batch calls by their single action.
        let action = match operation {
            "SendMessageBatch" => "SendMessage",
            "DeleteMessageBatch" => "DeleteMessage",
            "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
            other => other,
        };
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let resource = ["QueueUrl", "TableName", "SecretId", "Name"]
            .iter()
            .find_map(|k| body[k].as_str().map(str::to_owned))
            .or_else(|| body["RequestItems"].as_object()?.keys().next().cloned())
            .unwrap_or_else(|| "*".to_owned());
        // An index is a resource of its own.
        let resource = match body["IndexName"].as_str() {
            Some(index) => format!("{resource}/index/{index}"),
            None => resource,
        };
        let action = format!("{prefix}:{action}");
        let mut calls = self.0.lock().expect("lock");
        let keys = partition_keys(&body);
        for key in &keys {
            calls.insert((action.clone(), resource.clone(), key.clone()));
        }
        if keys.is_empty() {
            calls.insert((action, resource, String::new()));
        }
    }
}

impl Calls {
    /// An S3 call (REST, path-style as moto is reached): its action, and the
    /// object (`bucket/key`) or bucket it names.
    fn record_s3(&self, request: &HttpRequest) {
        let uri = request.uri();
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let path = path
            .split("://")
            .nth(1)
            .map_or(path, |rest| rest.find('/').map_or("", |i| &rest[i..]));
        let Some((bucket, key)) = path.trim_start_matches('/').split_once('/').or_else(|| {
            let bucket = path.trim_start_matches('/');
            (!bucket.is_empty()).then_some((bucket, ""))
        }) else {
            return;
        };
        let versioned = query.split('&').any(|p| p.starts_with("versionId="));
        let action = match (request.method(), key.is_empty()) {
            ("GET" | "HEAD", false) if versioned => "s3:GetObjectVersion",
            ("GET" | "HEAD", false) => "s3:GetObject",
            ("GET", true)
                if query
                    .split('&')
                    .any(|p| p == "versions" || p.starts_with("versions=")) =>
            {
                "s3:ListBucketVersions"
            }
            ("PUT", false) => "s3:PutObject",
            (method, _) => panic!("an S3 call the recorder does not know: {method} {uri}"),
        };
        let resource = if key.is_empty() {
            bucket.to_owned()
        } else {
            format!("{bucket}/{key}")
        };
        let mut calls = self.0.lock().expect("lock");
        calls.insert((action.to_owned(), resource, String::new()));
    }
}

/// The partition keys (`pk`) a DynamoDB request names: its item's or key's, or
/// each of a batch's.
fn partition_keys(body: &Value) -> Vec<String> {
    let pk = |v: &Value| v["pk"]["S"].as_str().map(str::to_owned);
    let mut keys: Vec<String> = [&body["Item"], &body["Key"]]
        .into_iter()
        .filter_map(pk)
        .collect();
    for requests in body["RequestItems"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
    {
        for request in requests.as_array().into_iter().flatten() {
            keys.extend(pk(&request["PutRequest"]["Item"]));
            keys.extend(pk(&request["DeleteRequest"]["Key"]));
        }
        for key in requests["Keys"].as_array().into_iter().flatten() {
            keys.extend(pk(key));
        }
    }
    keys
}

#[derive(Debug)]
struct Recorder {
    inner: SharedHttpClient,
    calls: Calls,
}

impl HttpClient for Recorder {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            inner: self.inner.http_connector(settings, components),
            calls: self.calls.clone(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    inner: SharedHttpConnector,
    calls: Calls,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.calls.record(&request);
        self.inner.call(request)
    }
}

use crate::stack::{Stack, ghl_has, stack};
use crate::template::{list, statements, template, text};
use ghl_capi_tests::fixtures::{contact, webhook};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// Whether `function`'s role allows `action` on `resource` (a queue URL, table or
/// secret name of the stack `s`).
pub(crate) fn allowed(
    t: &yaml_rust2::Yaml,
    s: &Stack,
    function: &str,
    action: &str,
    resource: &str,
) -> bool {
    allowed_key(t, s, function, action, resource, None)
}

/// As [`allowed`], for a call naming the partition key `key`: a statement with a
/// `dynamodb:LeadingKeys` condition allows only keys its patterns match.
pub(crate) fn allowed_key(
    t: &yaml_rust2::Yaml,
    s: &Stack,
    function: &str,
    action: &str,
    resource: &str,
    key: Option<&str>,
) -> bool {
    let vars = &t["Resources"][function]["Properties"]["Environment"]["Variables"];
    let names = |r: &yaml_rust2::Yaml| -> bool {
        let r = text(r);
        if r == "*" {
            return true;
        }
        // `!Sub "${Table.Arn}/index/Name"`, `!Sub "${Bucket.Arn}/key"`: that
        // index of the table, that object of the bucket.
        if let Some((arn, within)) = r.strip_prefix("${").and_then(|r| r.split_once(".Arn}/")) {
            return vars.as_hash().into_iter().flatten().any(|(var, value)| {
                text(value) == arn
                    && s.vars
                        .get(text(var).as_str())
                        .is_some_and(|v| resource == format!("{v}/{within}"))
            });
        }
        // `!Sub "…:secret:${AWS::StackName}/ghl/*"`: the stack's secrets by name.
        if let Some((_, name)) = r.split_once(":secret:") {
            let name = name.replace("${AWS::StackName}", &s.id);
            return match name.strip_suffix('*') {
                Some(prefix) => resource.starts_with(prefix),
                None => resource == name,
            };
        }
        // `!Ref X` / `!GetAtt X.Arn`: what the function's variable naming X holds.
        let logical = r.trim_end_matches(".Arn");
        vars.as_hash().into_iter().flatten().any(|(var, value)| {
            text(value) == logical
                && s.vars
                    .get(text(var).as_str())
                    .is_some_and(|v| v == resource)
        })
    };
    let leading = |st: &yaml_rust2::Yaml| -> bool {
        let patterns = list(&st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
        if patterns.is_empty() {
            return true;
        }
        // Keys are checked call by call ([`Calls::keys`]).
        let Some(key) = key else { return true };
        patterns.iter().any(|p| {
            let p = text(p);
            match p.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == p,
            }
        })
    };
    statements(t, function).iter().any(|st| {
        list(&st["Action"])
            .iter()
            .any(|a| a.as_str() == Some(action))
            && list(&st["Resource"]).iter().any(names)
            && leading(st)
    })
}

#[tokio::test]
async fn every_aws_call_a_handler_makes_is_one_its_role_allows_on_that_resource() {
    // Its metrics go where the tests that count them read.
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    // Written back into GHL: the event Meta took (tag, fields, note; its echo
    // awaited), and the refused one's task.
    let rules = "\n[[rules]]\nname = \"refused\"\ntrigger = \"contact.updated\"\nevent_name = \"Refused\"\n\
                 [rules.write_back]\ntask_on_dead_letter = true\n\
                 [[rules]]\nname = \"welcome\"\ntrigger = \"contact.created\"\nevent_name = \"Contact\"\n\
                 needs = []\n[rules.write_back]\ntag = \"capi:Contact\"\nnote = true\n\
                 fields = { event_id = \"contact.capi_event_id\" }\n";
    let audiences = ghl_capi_tests::fixtures::audiences(r#"{ secret = "{stack}/meta/ads" }"#);
    let s = stack(&format!("{rules}{audiences}")).await;
    let ads = format!("{}/meta/ads", s.id);
    ghl_capi_tests::moto::secret(&s.secrets, &ads, r#"{"access_token":"EAAB-ads"}"#).await;
    ghl_capi_tests::audience_stand_in::AudienceStandIn::expecting_token("EAAB-ads")
        .mount(&s.graph, ghl_capi_tests::fixtures::VIP_AUDIENCE)
        .await;
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    let writes = ghl_capi_tests::writes_stand_in::WritesStandIn::default();
    writes.mount(&s.ghl, crate::stack::GHL_TOKEN).await;
    // The key written back is resolved, and the location's names kept.
    let field = [("f-id", "contact.capi_event_id")];
    writes
        .serve_fields(&s.ghl, ghl_capi_tests::fixtures::LOCATION, &field)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts/c-gone"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&s.ghl)
        .await;
    // Rate-limited once: the job is hidden for GHL's interval.
    let late = contact("c-late", "late@example.com", &[]);
    Mock::given(method("GET"))
        .and(path("/contacts/c-late"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("X-RateLimit-Interval-Milliseconds", "1000"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.ghl)
        .await;
    ghl_has(&s.ghl, &late).await;
    // Held, paused, requeued, delayed, dead-lettered, delivered: every path.
    s.meta.fail_next(3);
    for body in [
        webhook("ContactCreate", "wh-ann", ann.clone()),
        webhook("ContactUpdate", "wh-refused", ann),
        webhook(
            "ContactCreate",
            "wh-gone",
            contact("c-gone", "g@example.com", &[]),
        ),
        webhook("ContactCreate", "wh-late", late),
        // Joins an audience: memberships written, the change applied in order.
        webhook(
            "ContactTagUpdate",
            "wh-vip",
            contact("c-vip", "vip@example.com", &["vip"]),
        ),
    ] {
        assert_eq!(s.deliver(body).await.0, 200);
    }
    let conversion = serde_json::json!({"locationId": ghl_capi_tests::fixtures::LOCATION,
        "eventType": "Purchase", "value": 1.0, "currency": "USD",
        "timestamp": chrono::Utc::now().to_rfc3339()});
    let posted = s
        .post(
            "/contacts/c-ann/conversions",
            &[("authorization", format!("Bearer {}", crate::stack::API_KEY))],
            serde_json::to_vec(&conversion).expect("json"),
        )
        .await;
    assert_eq!(posted.0, 202, "{posted:?}");
    s.drain().await;
    assert!(!writes.of("notes").is_empty() && !writes.of("tasks").is_empty());

    let t = template();
    let mut all = BTreeSet::new();
    for (function, calls) in &s.calls {
        for (action, resource) in calls.seen() {
            assert!(
                allowed(&t, &s, function, &action, &resource),
                "{function} calls {action} on {resource}, which its role does not allow"
            );
            all.insert(action);
        }
        let keys = calls.keys();
        if function != &"IntakeFunction" {
            assert!(!keys.is_empty(), "{function} named no state keys");
        }
        for (action, resource, key) in keys {
            assert!(
                allowed_key(&t, &s, function, &action, &resource, Some(&key)),
                "{function} calls {action} on {resource} for key {key}, which its role does not allow"
            );
        }
    }
    for expected in [
        "sqs:SendMessage",
        "sqs:ChangeMessageVisibility",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        // Dispatch's quality counters.
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
        "s3:GetObject",
    ] {
        assert!(
            all.contains(expected),
            "the scenario never called {expected}: {all:?}"
        );
    }
}

#[tokio::test]
async fn every_aws_call_the_scheduled_refresh_makes_is_one_its_role_allows() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let sdk = ghl_capi_tests::moto::sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let id = ghl_capi_tests::unique("refresh");
    let app_secret = format!("{id}/ghl-app");
    let app = serde_json::json!({"client_id": "app-1", "client_secret": "shh"});
    ghl_capi_tests::moto::secret(&secrets, &app_secret, &app.to_string()).await;
    let app_id = ("GHL_APP_ID", "app-1".to_owned());
    let s = crate::stack::Stack::with("", &[("GHL_APP_SECRET", app_secret), app_id]).await;
    // One token set due soon (refreshed), one later (left alone).
    let due = |minutes, refresh| {
        serde_json::json!({"access_token": "at-old", "refresh_token": refresh,
            "expires_at": (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339(),
            "user_type": "Location", "location_id": "loc9"})
        .to_string()
    };
    for (location, token) in [("loc9", due(30, "rt-old")), ("loc8", due(1200, "rt-8"))] {
        let name = format!("{}/ghl/{location}", s.id);
        ghl_capi_tests::moto::secret(&s.secrets, &name, &token).await;
    }
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at-new", "refresh_token": "rt-new", "expires_in": 86399,
            "userType": "Location", "locationId": "loc9"})))
        .expect(1)
        .mount(&s.ghl)
        .await;
    let vars = &s.vars;
    let settings = ghl_capi::settings::RefreshSettings::from_lookup(|n| vars.get(n).cloned())
        .expect("settings");
    let calls = Calls::default();
    let refresh = ghl_capi_aws::lambda::TokenRefresh::new(settings, &calls.recording(&sdk))
        .await
        .expect("refresh");
    let summary = refresh.handle().await.expect("all refreshed");
    assert_eq!(summary["refreshed"], 1, "{summary}");

    let t = template();
    let seen = calls.seen();
    for (action, resource) in &seen {
        assert!(
            allowed(&t, &s, "TokenRefreshFunction", action, resource),
            "TokenRefreshFunction calls {action} on {resource}, which its role does not allow"
        );
    }
    for (action, resource, key) in calls.keys() {
        assert!(
            allowed_key(
                &t,
                &s,
                "TokenRefreshFunction",
                &action,
                &resource,
                Some(&key)
            ),
            "TokenRefreshFunction calls {action} on {resource} for key {key}, which its role does not allow"
        );
    }
    let actions: BTreeSet<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    for expected in [
        "secretsmanager:ListSecrets",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
        "dynamodb:PutItem",
    ] {
        assert!(
            actions.contains(expected),
            "the run never called {expected}: {actions:?}"
        );
    }
}
