//! The `ghl-capi` command as a user runs it: real process, real stdin and stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;

use ghl_capi_tests::reference;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// Starts `ghl-capi`, feeding `stdin` from another thread: the child writes while
/// it reads, and a full stdout pipe would otherwise stop both sides.
fn start(args: &[&str], stdin: String) -> (Child, JoinHandle<std::io::Result<()>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ghl-capi starts");
    let mut pipe = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || pipe.write_all(stdin.as_bytes()));
    (child, feeder)
}

pub(crate) fn run(args: &[&str], stdin: &str) -> Output {
    let (child, feeder) = start(args, stdin.to_owned());
    let out = child.wait_with_output().expect("ghl-capi ends");
    feeder.join().expect("feeder").expect("write stdin");
    out
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is JSON"))
        .collect()
}

#[test]
fn normalize_answers_every_vector_line_like_the_library() {
    let text = std::fs::read_to_string(reference("meta/normalize-vectors.jsonl")).expect("vectors");
    let input: String = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            let mut req = serde_json::json!({"field": v["field"], "input": v["input"]});
            if let Some(c) = v.get("country") {
                req["country"] = c.clone();
            }
            req.to_string() + "\n"
        })
        .collect();
    let out = run(&["normalize"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers = lines(&out);
    // The vectors themselves are checked against the library, with the profile's
    // amendments, in `tests/tests/it/normalize_vectors.rs`; here the command must
    // answer exactly what the library gives.
    for (line, got) in text.lines().zip(&answers) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let field: ghl_capi::normalize::Field =
            v["field"].as_str().expect("field").parse().expect("field");
        let input = v["input"].as_str().expect("input");
        let ours = ghl_capi::normalize::normalize(field, input, v["country"].as_str());
        assert_eq!(
            got["normalized"].as_str(),
            ours.as_ref().map(|n| n.as_str()),
            "{line}"
        );
        assert_eq!(
            got["sha256"].as_str(),
            ours.as_ref().map(|n| n.sha256().to_string()).as_deref(),
            "{line}"
        );
        assert_eq!(got["input"], v["input"]);
    }
    assert_eq!(answers.len(), text.lines().count());
}

#[test]
fn normalize_reports_malformed_lines_and_carries_on() {
    let out = run(
        &["normalize"],
        "{\"field\":\"fn\",\"input\":\"Mary\"}\nnot json\n{\"field\":\"xx\",\"input\":\"a\"}\n{\"field\":\"ln\",\"input\":\"O'Brien\"}\n",
    );
    assert_eq!(out.status.code(), Some(3));
    let answers = lines(&out);
    assert_eq!(answers.len(), 4);
    assert_eq!(answers[0]["normalized"], "mary");
    assert_eq!(answers[1]["line"], 2);
    assert!(
        answers[1]["error"]
            .as_str()
            .expect("error")
            .contains("not a normalize request")
    );
    assert!(
        answers[2]["error"]
            .as_str()
            .expect("error")
            .contains("unknown field `xx`")
    );
    assert_eq!(answers[3]["normalized"], "obrien");
}

fn contact(i: usize, date_added: &str) -> String {
    serde_json::json!({
        "id": format!("c{i}"), "locationId": "loc", "email": format!("user{i}@example.com"),
        "firstName": "Ann", "country": "US", "dateAdded": date_added
    })
    .to_string()
}

#[test]
fn map_writes_bodies_of_at_most_a_thousand_events_and_summarises_rejections() {
    let now = chrono::Utc::now();
    let recent = (now - chrono::Duration::hours(1)).to_rfc3339();
    let stale = (now - chrono::Duration::days(30)).to_rfc3339();
    let mut input = String::new();
    for i in 0..2500 {
        input.push_str(&contact(i, if i % 500 == 499 { &stale } else { &recent }));
        input.push('\n');
    }
    input.push_str("{\"broken\": \n");
    let out = run(&["map", "--threads", "2"], &input);
    assert_eq!(out.status.code(), Some(3), "a malformed line is reported");
    let bodies = lines(&out);
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["data"].as_array().expect("data").len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 495]);
    let ids: Vec<&str> = bodies
        .iter()
        .flat_map(|b| b["data"].as_array().expect("data"))
        .map(|e| e["event_name"].as_str().expect("name"))
        .collect();
    assert!(ids.iter().all(|n| *n == "Lead"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mapped 2501 contacts: 2495 events in 3 request bodies; 6 rejected"),
        "{stderr}"
    );
    assert!(
        stderr.contains("too_old") && stderr.contains("lines 500, 1000, 1500, 2000, 2500"),
        "{stderr}"
    );
    assert!(stderr.contains("malformed_contact"), "{stderr}");
}

#[test]
fn map_keeps_input_order_across_threads() {
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let input: String = (0..5000).map(|i| contact(i, &recent) + "\n").collect();
    let one = run(&["map", "--threads", "1"], &input);
    let two = run(&["map", "--threads", "2"], &input);
    assert!(one.status.success() && two.status.success());
    assert_eq!(one.stdout, two.stdout);
}

#[test]
fn map_routes_to_one_pixel_with_its_test_code() {
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let mapping = repo("infra/mapping.example.toml");
    let mut c: serde_json::Value = serde_json::from_str(&contact(1, &recent)).expect("json");
    c["locationId"] = "ve9EPM428h8vShlRW1KT".into();
    c["source"] = "website".into();
    let out = run(
        &[
            "map",
            "--mapping",
            mapping.to_str().expect("path"),
            "--pixel",
            "main",
        ],
        &(c.to_string() + "\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bodies = lines(&out);
    assert_eq!(bodies[0]["test_event_code"], "TEST12345");
    assert_eq!(bodies[0]["data"][0]["event_name"], "Lead");

    let unknown = run(
        &[
            "map",
            "--config",
            mapping.to_str().expect("path"),
            "--pixel",
            "nope",
        ],
        "",
    );
    assert_eq!(unknown.status.code(), Some(1));
}

#[test]
fn mapping_check_accepts_the_example_and_names_the_line_of_an_error() {
    let ok = run(
        &[
            "mapping",
            "check",
            repo("infra/mapping.example.toml").to_str().expect("path"),
        ],
        "",
    );
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid, 2 pixel(s), 8 rule(s)"));

    let dir = std::env::temp_dir().join(format!("ghl-capi-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[rules]]\nname = \"x\"\ntrigger = \"opportunity.won\"\nevent_name = \"Purchase\"\n",
    )
    .expect("write");
    let out = run(&["mapping", "check", bad.to_str().expect("path")], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:") && stderr.contains("unknown trigger `opportunity.won`"),
        "{stderr}"
    );
}

#[test]
fn mapping_preview_shows_hashes_beside_normalised_values() {
    let out = run(
        &[
            "mapping",
            "preview",
            "builtin",
            reference("ghl/webhooks/constructed/ContactCreate.delivered.json")
                .to_str()
                .expect("path"),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rule new-contact-lead → Lead"), "{text}");
    assert!(text.contains("\"+919509597501\" → 919509597501 → b794517169e83ee10eee2555fdda3f6fe2ed19acde6ed89ff2006dc049aa002e"), "{text}");

    let json = run(
        &[
            "mapping",
            "preview",
            "builtin",
            reference("ghl/webhooks/OpportunityStatusUpdate.json")
                .to_str()
                .expect("path"),
            "--json",
        ],
        "",
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["webhook"], "OpportunityStatusUpdate");
    assert_eq!(
        value["occurrences"][0]["trigger"],
        "opportunity.status_changed"
    );
    assert_eq!(
        value["occurrences"][0]["events"],
        serde_json::json!([]),
        "an open opportunity is no purchase"
    );
}

#[test]
fn help_is_there_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["map", "--help"],
        vec!["normalize", "--help"],
        vec!["mapping", "preview", "--help"],
    ] {
        let out = run(&args, "");
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
    assert_eq!(run(&["frobnicate"], "").status.code(), Some(2));
}

/// Reads a little of `child`'s output, closes it (`| head -c 64`) and waits: the
/// command must end soon, quietly (exit 0, nothing on stderr, no panic).
fn ends_quietly_when_its_reader_goes_away(mut child: Child) {
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("some output");
    drop(stdout);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("ghl-capi must stop, not hang, when stdout closes")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "a closed pipe is no error: {stderr}");
}

#[test]
fn map_stops_quietly_when_its_reader_goes_away() {
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let input: String = (0..30_000).map(|i| contact(i, &recent) + "\n").collect();
    // The feeder fails once ghl-capi stops reading; that is expected here.
    let (child, _feeder) = start(&["map", "--threads", "2"], input);
    ends_quietly_when_its_reader_goes_away(child);
}

#[test]
fn dlq_list_stops_quietly_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    // Far more than a pipe holds (64 KiB), so the writes after `head` left fail.
    for i in 0..2_000 {
        let letter = serde_json::json!({"deadLetter": {"source": format!("wh-{i}"), "stage": "enrich",
            "code": "contact_not_found", "reason": "GHL has no such contact ".repeat(4)},
            "message": "{}"});
        store
            .send(
                ghl_capi_local::store::DEAD,
                &letter.to_string(),
                (None, None),
                Default::default(),
            )
            .expect("stored");
    }
    let data_dir = dir.path().to_str().expect("path");
    for format in [&["--json"][..], &[]] {
        let child = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .args(["dlq", "list", "--data-dir", data_dir])
            .args(format)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dlq list starts");
        ends_quietly_when_its_reader_goes_away(child);
    }
}

#[test]
fn oauth_url_prints_an_install_link_with_the_scopes_the_mapping_needs() {
    let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["oauth", "url", "--company"])
        .env("GHL_CLIENT_ID", "app-1")
        .env("GHL_CLIENT_SECRET", "shh")
        .env("OAUTH_REDIRECT_URI", "https://x.example/oauth/callback")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let link = String::from_utf8_lossy(&out.stdout);
    assert!(link.starts_with("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?"));
    for part in [
        "client_id=app-1",
        "scope=contacts.readonly+opportunities.readonly+calendars%2Fevents.readonly+oauth.readonly+oauth.write",
        "redirect_uri=https%3A%2F%2Fx.example%2Foauth%2Fcallback",
        "&state=",
    ] {
        assert!(link.contains(part), "{part} in {link}");
    }
    // Rules written in names: the scopes that list a location's names too.
    let dir = tempfile::tempdir().expect("dir");
    let named = dir.path().join("mapping.toml");
    let rule = "\n[[rules]]\nname = \"q\"\ntrigger = \"opportunity.stage_changed\"\nstage = \"Qualified\"\nevent_name = \"QualifiedLead\"\n";
    std::fs::write(&named, ghl_capi_tests::fixtures::mapping_text() + rule).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["oauth", "url", "--mapping"])
        .arg(&named)
        .env("GHL_CLIENT_ID", "app-1")
        .env("GHL_CLIENT_SECRET", "shh")
        .output()
        .expect("runs");
    let link = String::from_utf8_lossy(&out.stdout);
    assert!(
        link.contains(
            "opportunities.readonly+locations%2FcustomFields.readonly+calendars.readonly"
        ),
        "{link}"
    );
    // A rule writing back (a field by key): contacts.write, and the names that
    // resolve the key; without one, no contacts.write.
    let writing = dir.path().join("writing.toml");
    let text = ghl_capi_tests::fixtures::writing_back(&ghl_capi_tests::fixtures::mapping_text());
    std::fs::write(&writing, text).expect("written");
    let link = |mapping: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .args(["oauth", "url", "--mapping"])
            .arg(mapping)
            .env("GHL_CLIENT_ID", "app-1")
            .env("GHL_CLIENT_SECRET", "shh")
            .output()
            .expect("runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let writes = link(&writing);
    assert!(
        writes.contains("scope=contacts.readonly+contacts.write+"),
        "{writes}"
    );
    assert!(
        writes.contains("locations%2FcustomFields.readonly"),
        "{writes}"
    );
    assert!(
        !link(&named).contains("contacts.write"),
        "no write without a write-back"
    );
    let missing = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["oauth", "url"])
        .env_remove("GHL_CLIENT_ID")
        .env_remove("GHL_CLIENT_SECRET")
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(2), "a usage error");
}

#[test]
fn mapping_preview_takes_an_unseen_contacts_tags_as_baseline_unless_told_its_previous_ones() {
    use ghl_capi_tests::fixtures::{contact, mapping_path, webhook};
    let dir = tempfile::tempdir().expect("dir");
    let preview = |kind: &str, extra: &[&str]| {
        let file = dir.path().join(format!("{kind}.json"));
        let fields = contact("c1", "ann@example.com", &["vip"]);
        std::fs::write(&file, webhook(kind, "wh-1", fields)).expect("written");
        let mapping = mapping_path();
        let mut args = vec!["mapping", "preview", mapping.to_str().expect("path")];
        args.push(file.to_str().expect("path"));
        args.extend(extra);
        let out = run(&args, "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = preview("ContactTagUpdate", &[]);
    assert!(first.contains("baseline taken"), "{first}");
    assert!(
        !first.contains("CompleteRegistration"),
        "nothing fires: {first}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&preview("ContactTagUpdate", &["--json"])).expect("json");
    assert_eq!(json["baseline"], true);

    let change = preview("ContactTagUpdate", &["--previous-tags", ""]);
    assert!(
        change.contains("rule vip → CompleteRegistration"),
        "{change}"
    );
    assert!(!change.contains("baseline taken"), "{change}");
    let unchanged = preview("ContactTagUpdate", &["--previous-tags", "vip"]);
    assert!(!unchanged.contains("CompleteRegistration"), "{unchanged}");
    // A new contact had no tags before: each counts as added.
    let created = preview("ContactCreate", &[]);
    assert!(
        created.contains("rule lead → Lead") && created.contains("rule vip → CompleteRegistration"),
        "{created}"
    );
}

#[test]
fn map_counts_a_created_contacts_tags_as_added_as_the_pipeline_does() {
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let mut c: serde_json::Value = serde_json::from_str(&contact(1, &recent)).expect("json");
    c["tags"] = serde_json::json!(["vip", "other"]);
    let mapping = ghl_capi_tests::fixtures::mapping_path();
    let events = |trigger: &str| -> Vec<String> {
        let out = run(
            &[
                "map",
                "--config",
                mapping.to_str().expect("path"),
                "--pixel",
                "main",
                "--trigger",
                trigger,
            ],
            &(c.to_string() + "\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out)
            .iter()
            .flat_map(|body| body["data"].as_array().cloned().unwrap_or_default())
            .map(|e| e["event_name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(events("contact.created"), ["Lead", "CompleteRegistration"]);
    assert_eq!(events("contact.tag_added"), ["CompleteRegistration"]);
    assert!(events("contact.updated").is_empty());
}

#[test]
fn keys_new_prints_a_random_url_safe_key_scoped_to_its_locations() {
    use ghl_capi::intake::keys::ApiKeys;
    let new = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["keys", "new", "--location", "loc-a", "--json"];
        args.extend(extra);
        let out = run(&args, "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let first = new(&["--id", "shop-a", "--event-type", "Purchase"]);
    let key = first["key"].as_str().expect("key");
    let random = key.strip_prefix("ck_").expect("prefix");
    assert!(random.len() >= 22, "at least 128 bits: {key}");
    assert!(
        random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_ne!(new(&[])["key"], first["key"], "a new key each time");
    let keys = ApiKeys::parse(&serde_json::json!([first["entry"]]).to_string()).expect("storable");
    let bearer = format!("Bearer {key}");
    let credentials = ghl_capi::intake::keys::Credentials {
        authorization: Some(&bearer),
        api_key: None,
        ..Default::default()
    };
    let found = keys.find(credentials).expect("found");
    assert_eq!(found.id, "shop-a");
    assert!(found.allows("loc-a", Some("Purchase")).is_ok());
    assert!(found.allows("loc-b", Some("Purchase")).is_err());
    assert!(found.allows("loc-a", Some("Lead")).is_err());
    assert_eq!(
        run(&["keys", "new"], "").status.code(),
        Some(2),
        "a location is required"
    );
}

#[test]
fn dlq_list_shows_ids_and_a_hash_of_each_job_and_its_body_only_when_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    let job = serde_json::json!({"kind": "webhook", "key": "wh-1", "received_at": "2026-11-20T10:00:00Z",
        "body": serde_json::json!({"type": "ContactCreate", "locationId": "loc", "id": "c1",
            "email": "ann@example.com", "phone": "+4915112345678"}).to_string()});
    let letter = serde_json::json!({"deadLetter": {"source": "wh-1", "stage": "enrich",
        "code": "contact_not_found", "reason": "GHL has no contact c1"}, "message": job.to_string()});
    store
        .send(
            ghl_capi_local::store::DEAD,
            &letter.to_string(),
            (None, None),
            Default::default(),
        )
        .expect("stored");
    let data_dir = dir.path().to_str().expect("path");
    let list = |extra: &[&str]| -> String {
        let mut args = vec!["dlq", "list", "--json", "--data-dir", data_dir];
        args.extend(extra);
        let out = run(&args, "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = list(&[]);
    assert!(
        !shown.contains("ann@example.com") && !shown.contains("4915112345678"),
        "{shown}"
    );
    let line: serde_json::Value = serde_json::from_str(shown.trim()).expect("json");
    assert_eq!(
        (line["code"].as_str(), line["source"].as_str()),
        (Some("contact_not_found"), Some("wh-1"))
    );
    assert_eq!(line["message_sha256"].as_str().map(str::len), Some(64));
    assert!(list(&["--show-bodies"]).contains("ann@example.com"));
}
