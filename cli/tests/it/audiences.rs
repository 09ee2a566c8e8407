//! Custom Audiences through `ghl-capi serve` as a real process: a contact's tags
//! move it in and out of an audience at a stand-in of Meta's `/users` edge, which
//! checks every request; a redelivered webhook sends nothing; an audience whose
//! token is unset runs dry, its requests appended to the outbox.

use std::collections::BTreeSet;
use std::time::Duration;

use ghl_capi::capi::audience::SCHEMA;
use ghl_capi::normalize::sha256_hex;
use ghl_capi_tests::audience_stand_in::{AudienceStandIn, Taken};
use ghl_capi_tests::fixtures::{self, VIP_AUDIENCE, contact, webhook};
use ghl_capi_tests::stand_in::{MetaStandIn, ghl_serves};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::serve::{free_port, start_with, try_deliver};

const DRY_AUDIENCE: &str = r#"
[[audiences]]
name = "dry"
audience_id = "999"
access_token = { env = "TEST_UNSET_ADS_TOKEN" }
tags = ["vip"]
"#;

/// `serve` with the fixture mapping, its audiences and `extra`, their token set,
/// against GHL and a Graph API whose `vips` audience is stood in for: the stand-in,
/// the directory (`mapping.toml`, `data/`) and the server.
async fn serve_audiences(
    ghl: &MockServer,
    graph: &MockServer,
    extra: &str,
) -> (AudienceStandIn, tempfile::TempDir, crate::serve::Server) {
    let meta = AudienceStandIn::expecting_token("EAAB-ads");
    meta.mount(graph, VIP_AUDIENCE).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#)
        + &fixtures::audiences(r#"{ env = "TEST_ADS_TOKEN" }"#)
        + extra;
    std::fs::write(&mapping, text).expect("mapping written");
    let env = [("TEST_ADS_TOKEN".to_owned(), "EAAB-ads".to_owned())];
    let urls = (ghl.uri(), graph.uri());
    let data = dir.path().join("data");
    let server = start_with(&data, &mapping, (&urls.0, &urls.1), free_port(), &env).await;
    (meta, dir, server)
}

/// Waits until the stand-in took `n` requests (and a little longer, to catch one
/// that should not come); what it took.
async fn taken(meta: &AudienceStandIn, n: usize) -> Vec<Taken> {
    for _ in 0..200 {
        if meta.taken().len() >= n {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return meta.taken();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} audience requests, not {n}: {:?}",
        meta.taken().len(),
        meta.taken()
    )
}

fn email_of(taken: &Taken) -> Vec<&str> {
    taken.rows.iter().map(|row| row[1].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_move_a_contact_in_and_out_of_an_audience_through_serve() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    ghl_serves(
        &ghl,
        &contact("c-mary", "mary@example.com", &[]),
        "pit-local",
    )
    .await;
    MetaStandIn::expecting_token("EAAB-local")
        .mount(&graph, fixtures::DATASET)
        .await;
    let (meta, dir, server) = serve_audiences(&ghl, &graph, DRY_AUDIENCE).await;
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let send = |id: &str, email: &str, tags: &[&str]| {
        webhook("ContactTagUpdate", id, contact("c-mary", email, tags))
    };
    let deliver = async |body: Vec<u8>| {
        assert_eq!(try_deliver(&http, &server.url, body).await, Some(200));
    };

    deliver(send("w1", "mary@example.com", &["vip"])).await;
    let mary = sha256_hex("mary@example.com").as_str().to_owned();
    let first = taken(&meta, 1).await;
    assert_eq!(
        (first[0].method.as_str(), email_of(&first[0])),
        ("POST", vec![mary.as_str()])
    );
    let row = &first[0].rows[0];
    assert_eq!(row.len(), SCHEMA.len());
    assert_eq!(
        row[3],
        sha256_hex("ann").as_str(),
        "FN, normalised and hashed"
    );

    // GHL delivers the same webhook again: nothing more.
    deliver(send("w1", "mary@example.com", &["vip"])).await;
    assert_eq!(taken(&meta, 1).await.len(), 1);

    // One change at a time, each waited for: its requests, exactly.
    let mut seen = 1;
    let mut step = async |body: Vec<u8>, requests: usize| {
        deliver(body).await;
        seen += requests;
        let all = taken(&meta, seen).await;
        assert_eq!(all.len(), seen, "{all:?}");
        all[seen - requests..]
            .iter()
            .map(|t| (t.method.clone(), email_of(t).join(",")))
            .collect::<Vec<_>>()
    };
    let one = |method: &str, email: &str| vec![(method.to_owned(), email.to_owned())];
    let new = sha256_hex("mary@new.example").as_str().to_owned();
    assert_eq!(
        step(send("w2", "mary@example.com", &[]), 1).await,
        one("DELETE", &mary)
    );
    assert_eq!(
        step(send("w3", "mary@example.com", &["gold"]), 1).await,
        one("POST", &mary)
    );
    let moved = webhook(
        "ContactUpdate",
        "w4",
        contact("c-mary", "mary@new.example", &["gold"]),
    );
    assert_eq!(
        step(moved, 2).await,
        [one("DELETE", &mary), one("POST", &new)].concat()
    );
    let deleted = json!({"id": "c-mary", "email": "mary@new.example", "tags": ["gold"]});
    assert_eq!(
        step(webhook("ContactDelete", "w5", deleted), 1).await,
        one("DELETE", &new)
    );
    assert_eq!(meta.members(VIP_AUDIENCE), BTreeSet::new());

    // The audience without a token ran dry: its requests are in the outbox.
    let outbox = std::fs::read_to_string(data.join("outbox.jsonl")).unwrap_or_default();
    let dry: Vec<Value> = outbox
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["audience_id"] == "999")
        .collect();
    let methods: Vec<&str> = dry.iter().filter_map(|l| l["method"].as_str()).collect();
    assert_eq!(
        methods,
        ["POST", "DELETE"],
        "joined with vip, left when it went"
    );
    assert_eq!(dry[0]["payload"]["data"][0][1], mary);
    assert!(!outbox.contains("mary@example.com"), "hashes only");
    drop(server);
}

/// `args` run, its stdout as text, asserting it succeeded.
fn stdout_of(args: &[&str]) -> String {
    let out = crate::cli::run(args, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn mapping_check_lists_the_audiences_and_preview_shows_who_joins_with_the_row() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text =
        fixtures::mapping_text() + &fixtures::audiences(r#"{ secret = "ghl-capi/meta/ads" }"#);
    std::fs::write(&mapping, text).expect("mapping written");
    let mapping = mapping.to_str().expect("path");
    let checked = stdout_of(&["mapping", "check", mapping]);
    assert!(checked.contains("2 audience(s)"), "{checked}");
    assert!(
        checked.contains(
            "audience vips → custom audience 23851234567890123 (token: secret ghl-capi/meta/ads; \
             all locations): members while tagged vip or gold"
        ),
        "{checked}"
    );
    assert!(checked.contains("audience won-deals → custom audience 23851234567890456"));

    let body = dir.path().join("tagged.json");
    let tagged = json!({"type": "ContactTagUpdate", "locationId": "loc1", "id": "c1",
        "email": " Mary@Example.com", "phone": "+1 (555) 987-6543", "dateOfBirth": "1990-04-07",
        "tags": ["vip"], "timestamp": "2026-11-20T10:00:00Z"});
    std::fs::write(&body, tagged.to_string()).expect("body written");
    let body = body.to_str().expect("path");
    let shown = stdout_of(&["mapping", "preview", mapping, body, "--previous-tags", ""]);
    assert!(shown.contains("vips (23851234567890123): joins"), "{shown}");
    assert!(
        shown.contains("won-deals (23851234567890456): unchanged: this body says nothing"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "EMAIL      \" Mary@Example.com\" → mary@example.com → \
             f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("DOBM       \"1990-04-07\" → 04 → "),
        "{shown}"
    );
    let left = stdout_of(&[
        "mapping",
        "preview",
        mapping,
        body,
        "--member-of",
        "vips",
        "--json",
    ]);
    let left: Value = serde_json::from_str(&left).expect("json");
    assert_eq!(left["audiences"][0]["change"], "staysin");
    let phone = left["audiences"][0]["row"]
        .as_array()
        .expect("row")
        .iter()
        .find(|k| k["key"] == "PHONE")
        .expect("phone")
        .clone();
    assert_eq!(
        phone["sha256"],
        "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e"
    );
}

/// GHL's contact search and contact reads over a set of contacts that a test can
/// re-tag: `POST /contacts/search` pages (`page`, `pageLimit`, a `total`) and
/// honours a `tags` filter; `GET /contacts/{id}` answers the contact. Both check
/// the token and version header; every search body is kept.
#[derive(Clone)]
pub(crate) struct GhlContacts {
    pub(crate) contacts: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    pub(crate) searches: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl GhlContacts {
    /// A GHL stand-in holding `contacts`, and the handle that re-tags them.
    pub(crate) async fn serve(contacts: Vec<Value>) -> (MockServer, GhlContacts) {
        let ghl = MockServer::start().await;
        let this = GhlContacts {
            contacts: std::sync::Arc::new(std::sync::Mutex::new(contacts)),
            searches: Default::default(),
        };
        for verb in ["POST", "GET"] {
            wiremock::Mock::given(wiremock::matchers::method(verb))
                .respond_with(this.clone())
                .mount(&ghl)
                .await;
        }
        (ghl, this)
    }
}

impl wiremock::Respond for GhlContacts {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        use wiremock::ResponseTemplate;
        let authorised = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some("Bearer pit-local")
            && request.headers.get("version").and_then(|v| v.to_str().ok()) == Some("2021-07-28");
        if !authorised {
            return ResponseTemplate::new(401);
        }
        let contacts = self.contacts.lock().expect("lock").clone();
        if request.method.as_str() == "GET" {
            let id = request.url.path().trim_start_matches("/contacts/");
            return match contacts.iter().find(|c| c["id"] == id) {
                Some(c) => ResponseTemplate::new(200).set_body_json(json!({"contact": c})),
                None => ResponseTemplate::new(404),
            };
        }
        let body: Value = serde_json::from_slice(&request.body).expect("a JSON search");
        self.searches.lock().expect("lock").push(body.clone());
        assert_eq!(body["locationId"], fixtures::LOCATION);
        let tag = body["filters"][0]["value"].as_str().map(str::to_owned);
        let matching: Vec<&Value> = contacts
            .iter()
            .filter(|c| {
                tag.as_ref().is_none_or(|t| {
                    c["tags"]
                        .as_array()
                        .is_some_and(|tags| tags.contains(&json!(t)))
                })
            })
            .collect();
        let (page, limit) = (
            body["page"].as_u64().expect("page") as usize,
            body["pageLimit"].as_u64().expect("pageLimit") as usize,
        );
        let items: Vec<&Value> = matching
            .iter()
            .skip((page - 1) * limit)
            .take(limit)
            .copied()
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-RateLimit-Remaining", "99")
            .set_body_json(json!({"contacts": items, "total": matching.len()}))
    }
}

fn ghl_contacts(tagged: impl Fn(usize) -> bool) -> Vec<Value> {
    (0..450)
        .map(|i| {
            let tags = if tagged(i) {
                json!(["vip"])
            } else {
                json!(["other"])
            };
            json!({"id": format!("c{i}"), "locationId": fixtures::LOCATION,
                "email": format!("p{i}@example.com"), "tags": tags})
        })
        .collect()
}

/// `audience sync` with `extra` arguments against the store in `data`.
fn sync(data: &std::path::Path, mapping: &std::path::Path, ghl: &str, extra: &[&str]) -> String {
    sync_with(data, mapping, ghl, extra, &[])
}

/// [`sync`], with the variables `env` besides GHL's.
fn sync_with(
    data: &std::path::Path,
    mapping: &std::path::Path,
    ghl: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args([
            "audience",
            "sync",
            "vips",
            "--location",
            fixtures::LOCATION,
            "--mapping",
        ])
        .arg(mapping)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("GHL_API_BASE_URL", ghl)
        .env("GHL_TOKEN_loc1", "pit-local")
        .envs(env.iter().copied())
        .output()
        .expect("sync runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn members_become(meta: &AudienceStandIn, n: usize) -> BTreeSet<Vec<String>> {
    for _ in 0..300 {
        if meta.members(VIP_AUDIENCE).len() == n {
            tokio::time::sleep(Duration::from_millis(300)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    meta.members(VIP_AUDIENCE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_lists_ghls_pages_and_the_pipeline_sends_the_difference() {
    let (ghl, contacts) = GhlContacts::serve(ghl_contacts(|i| i % 2 == 0)).await;
    let graph = MockServer::start().await;
    let (meta, dir, server) = serve_audiences(&ghl, &graph, "").await;
    let (data, mapping) = (dir.path().join("data"), dir.path().join("mapping.toml"));

    // 225 of 450 contacts carry `vip`: three pages of the `vip` search, one (empty)
    // of `gold`'s.
    let dry = sync(&data, &mapping, &ghl.uri(), &["--dry-run"]);
    assert!(
        dry.contains("225 contacts listed (by tag), 225 members in GHL"),
        "{dry}"
    );
    assert!(
        dry.contains("would queue: 225 to add (or update), 0 to remove"),
        "{dry}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(meta.taken().is_empty(), "a dry run sends nothing");
    let searches = contacts.searches.lock().expect("lock").clone();
    let pages: Vec<(u64, &str)> = searches
        .iter()
        .map(|s| {
            (
                s["page"].as_u64().unwrap_or(0),
                s["filters"][0]["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(pages, [(1, "vip"), (2, "vip"), (3, "vip"), (1, "gold")]);

    let done = sync(&data, &mapping, &ghl.uri(), &[]);
    assert!(
        done.contains("queued: 225 to add (or update), 0 to remove"),
        "{done}"
    );
    let members = members_become(&meta, 225).await;
    let expected: BTreeSet<String> = (0..450)
        .step_by(2)
        .map(|i| sha256_hex(&format!("p{i}@example.com")).as_str().to_owned())
        .collect();
    assert_eq!(
        members
            .iter()
            .map(|r| r[1].clone())
            .collect::<BTreeSet<_>>(),
        expected
    );

    // A second sync with nothing changed sends nothing; then 25 lose the tag in
    // GHL without a webhook, and the next sync takes them out.
    let again = sync(&data, &mapping, &ghl.uri(), &[]);
    assert!(
        again.contains("queued: 0 to add (or update), 0 to remove; 225 already in"),
        "{again}"
    );
    *contacts.contacts.lock().expect("lock") = ghl_contacts(|i| i % 2 == 0 && i >= 50);
    let pruned = sync(&data, &mapping, &ghl.uri(), &[]);
    assert!(
        pruned.contains("queued: 0 to add (or update), 25 to remove; 200 already in"),
        "{pruned}"
    );
    assert_eq!(members_become(&meta, 200).await.len(), 200);
    let requests = meta.taken();
    assert!(
        requests.iter().all(|t| t.rows.len() <= 10_000),
        "within Meta's limit per request"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_mirrors_ghls_members_in_one_session_and_leaves_the_state_in_step() {
    let (ghl, contacts) = GhlContacts::serve(ghl_contacts(|i| i % 2 == 0)).await;
    let graph = MockServer::start().await;
    let (meta, dir, server) = serve_audiences(&ghl, &graph, "").await;
    let (data, mapping) = (dir.path().join("data"), dir.path().join("mapping.toml"));
    let graph_url = graph.uri();
    let env = [
        ("GRAPH_API_BASE_URL", graph_url.as_str()),
        ("TEST_ADS_TOKEN", "EAAB-ads"),
    ];
    let replace = |extra: &[&str]| {
        let mut args = vec![
            "--replace",
            "--replace-wait",
            "50ms",
            "--replace-poll",
            "20ms",
        ];
        args.extend(extra);
        sync_with(&data, &mapping, &ghl.uri(), &args, &env)
    };

    // The pipeline's own sync fills it; then 25 lose the tag in GHL unseen.
    sync(&data, &mapping, &ghl.uri(), &[]);
    assert_eq!(members_become(&meta, 225).await.len(), 225);
    *contacts.contacts.lock().expect("lock") = ghl_contacts(|i| i % 2 == 0 && i >= 50);
    let dry = replace(&["--dry-run"]);
    assert!(
        dry.contains("would replace its list with 200 members"),
        "{dry}"
    );
    assert!(meta.sessions().is_empty(), "a dry run sends nothing");

    let said = replace(&[]);
    assert!(said.contains("replaced with 200 members"), "{said}");
    assert!(said.contains("in 1 batch(es)"), "{said}");
    assert!(said.contains("Meta: finished"), "{said}");
    assert_eq!(meta.members(VIP_AUDIENCE).len(), 200);
    assert_eq!(meta.sessions().len(), 1);
    assert_eq!(meta.breaches(), Vec::<String>::new());
    assert!(
        said.contains("25 contacts recorded as the replace left them"),
        "{said}"
    );

    // The state store is in step with what Meta holds: a sync finds nothing to do.
    let again = sync(&data, &mapping, &ghl.uri(), &[]);
    assert!(
        again.contains("queued: 0 to add (or update), 0 to remove; 200 already in"),
        "{again}"
    );
    drop(server);
}

#[tokio::test]
async fn a_sync_of_the_deployed_stack_queues_its_jobs_on_the_enrichment_queue() {
    use ghl_capi::mapping::membership::{Member, member_key};
    use ghl_capi::ports::state::StateStore;
    use ghl_capi_aws::dynamo::DynamoState;
    use ghl_capi_tests::moto;

    let (ghl, _contacts) = GhlContacts::serve(ghl_contacts(|i| i < 3)).await;
    let sqs = ghl_capi_tests::moto_client!(aws_sdk_sqs);
    let dynamo = ghl_capi_tests::moto_client!(aws_sdk_dynamodb);
    let secrets = ghl_capi_tests::moto_client!(aws_sdk_secretsmanager);
    let id = ghl_capi_tests::unique("sync");
    let queue = moto::queue(&sqs, &format!("{id}-enrich.fifo"), None).await;
    let table = moto::state_table(&dynamo).await;
    moto::secret(
        &secrets,
        &format!("{id}/ghl/loc1"),
        r#"{"access_token":"pit-local"}"#,
    )
    .await;
    // A member the pipeline knows of that GHL no longer lists: it goes.
    let member = Member {
        member: true,
        row: None,
        seq: 1,
    };
    DynamoState::new(dynamo, &table)
        .set_records(
            &[(
                member_key("vips", "loc1", "c-old"),
                serde_json::to_string(&member).expect("json"),
            )],
            Duration::from_secs(3600),
        )
        .await
        .expect("member stored");
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text() + &fixtures::audiences(r#"{ secret = "x/meta/ads" }"#);
    std::fs::write(&mapping, text).expect("mapping written");

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"));
    command
        .args([
            "audience",
            "sync",
            "vips",
            "--aws",
            "--location",
            "loc1",
            "--mapping",
        ])
        .arg(&mapping)
        .args(["--state-table", &table, "--enrich-queue-url", &queue])
        .args(["--token-prefix", &format!("{id}/ghl/")])
        .env("GHL_API_BASE_URL", ghl.uri());
    let out = moto::at_moto(&mut command).output().expect("sync runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("queued: 3 to add (or update), 1 to remove"),
        "{stdout}"
    );

    let mut jobs = Vec::new();
    for message in moto::receive(&sqs, &queue).await {
        let job: Value = serde_json::from_str(message.body().unwrap_or_default()).expect("a job");
        let group = message
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
            .cloned();
        jobs.push((
            job["kind"].clone(),
            job["contact_id"].clone(),
            job["contact"].is_object(),
            group,
        ));
    }
    jobs.sort_by_key(|(_, id, ..)| id.to_string());
    let listed = |id: &str, carried: bool| {
        (
            json!("listed"),
            json!(id),
            carried,
            Some(format!("loc1:{id}")),
        )
    };
    assert_eq!(
        jobs,
        [
            listed("c-old", false),
            listed("c0", true),
            listed("c1", true),
            listed("c2", true)
        ]
    );
}
