//! `ghl-capi mapping init` against a GHL stand-in: from the location's real
//! pipelines, stages and calendars, a mapping in names that passes its checks and
//! previews against the most recent contacts, in one run; asked on a terminal (a
//! pseudo-terminal, through tmux) or given by flags, the same file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LOCATION: &str = "loc-init";

async fn ghl() -> MockServer {
    let ghl = MockServer::start().await;
    let answers = [
        (
            "/opportunities/pipelines",
            "2021-07-28",
            json!({"pipelines": [
            {"id": "p-other", "name": "Renewals", "stages": [{"id": "r1", "name": "Due"}]},
            {"id": "p-sales", "name": "Sales", "stages": [
                {"id": "s-new", "name": "New"}, {"id": "s-q", "name": "Qualified"},
                {"id": "s-booked", "name": "Booked"}, {"id": "s-won", "name": "Won"}]}]}),
        ),
        (
            "/locations/loc-init/customFields",
            "2021-07-28",
            json!({"customFields": []}),
        ),
        (
            "/locations/loc-init/tags",
            "2021-07-28",
            json!({"tags": [{"id": "t1", "name": "newsletter"}, {"id": "t2", "name": "vip"}]}),
        ),
        (
            "/calendars/",
            "2021-04-15",
            json!({"calendars": [
            {"id": "k-demo", "name": "Demo"}, {"id": "k-consult", "name": "Consultation"}]}),
        ),
        (
            "/contacts/",
            "2021-07-28",
            json!({"contacts": [
            {"id": "c-1", "locationId": LOCATION, "email": "one@example.com", "dateAdded": "2026-12-01T10:00:00Z"},
            {"id": "c-2", "locationId": LOCATION, "email": "two@example.com", "dateAdded": "2026-12-02T10:00:00Z"}],
            "meta": {"total": 2}}),
        ),
        (
            "/opportunities/search",
            "2021-07-28",
            json!({"opportunities": [
            {"id": "o-2", "contactId": "c-2", "pipelineId": "p-sales", "pipelineStageId": "s-q",
             "status": "open", "monetaryValue": 500}],
            "meta": {"total": 1}}),
        ),
        (
            "/contacts/c-1/appointments",
            "2021-07-28",
            json!({"events": [
            {"id": "a-1", "calendarId": "k-consult", "contactId": "c-1", "appointmentStatus": "confirmed"}]}),
        ),
        (
            "/contacts/c-2/appointments",
            "2021-07-28",
            json!({"events": []}),
        ),
    ];
    for (at, version, body) in answers {
        Mock::given(method("GET"))
            .and(path(at))
            .and(header("authorization", "Bearer pit-init"))
            .and(header("version", version))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&ghl)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/contacts/"))
        .and(query_param("startAfterId", "c-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contacts": []})))
        .with_priority(1)
        .mount(&ghl)
        .await;
    ghl
}

fn init(ghl: &MockServer, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ghl-capi"));
    command
        .args(["mapping", "init", "--location", LOCATION, "--data-dir"])
        .arg(dir.join("data"))
        .env("GHL_API_BASE_URL", ghl.uri())
        .env(format!("GHL_TOKEN_{LOCATION}"), "pit-init");
    command
}

/// `mapping init` given every answer by `FLAGS`, writing `output`.
fn by_flags(ghl: &MockServer, dir: &Path, output: &Path) -> std::process::Output {
    init(ghl, dir)
        .args(FLAGS)
        .arg("--output")
        .arg(output)
        .output()
        .expect("runs")
}

const FLAGS: [&str; 28] = [
    "--template",
    "conversion-leads",
    "--template",
    "purchases",
    "--template",
    "appointments",
    "--pixel",
    "main",
    "--dataset-id",
    "1234567890",
    "--token",
    "env:META_TOKEN",
    "--currency",
    "EUR",
    "--pipeline",
    "Sales",
    "--lead-stage",
    "New",
    "--stage",
    "Qualified",
    "--calendar",
    "Consultation",
    "--template",
    "audiences",
    "--audience",
    "vip=23850001",
    "--audience-token",
    "env:ADS_TOKEN",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_make_a_checked_mapping_in_names_previewed_against_recent_contacts() {
    let ghl = ghl().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    let out = by_flags(&ghl, dir.path(), &file);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // The preview: the newest contact first, each with what it would have sent.
    let c2 = said
        .lines()
        .position(|l| l.contains("c-2 (added"))
        .expect("c-2 previewed");
    let c1 = said
        .lines()
        .position(|l| l.contains("c-1 (added"))
        .expect("c-1 previewed");
    assert!(c2 < c1, "newest first: {said}");
    let line = |id: &str| {
        said.lines()
            .find(|l| l.contains(&format!("{id} (added")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("c-2").contains("Qualified (stage-qualified)"),
        "{said}"
    );
    assert!(line("c-1").contains("Schedule (booked)"), "{said}");
    assert!(
        !said.contains("example.com"),
        "no one's address in the output: {said}"
    );

    let text = std::fs::read_to_string(&file).expect("written");
    for part in [
        "pipeline = \"Sales\"",
        "stage = \"New\"",
        "stage = \"Qualified\"",
        "calendar = [\"Consultation\"]",
        "currency = \"EUR\"",
        "access_token = { env = \"META_TOKEN\" }",
        "audience_id = \"23850001\"",
        "tags = [\"vip\"]",
        "access_token = { env = \"ADS_TOKEN\" }",
    ] {
        assert!(text.contains(part), "{part} in\n{text}");
    }
    let check = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["mapping", "check"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Not over a file that is there, unless told.
    let again = by_flags(&ghl, dir.path(), &file);
    assert!(!again.status.success());
    // A name the location lacks is refused, naming what it has.
    let wrong = init(&ghl, dir.path())
        .args(
            FLAGS
                .iter()
                .map(|f| if *f == "Qualified" { "Hot" } else { f }),
        )
        .arg("--output")
        .arg(dir.path().join("other.toml"))
        .output()
        .expect("runs");
    let told = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && told.contains("it has: Qualified, Booked, Won"),
        "{told}"
    );
}

/// What tmux's pane `session` shows.
fn screen(session: &str) -> String {
    let out = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", session])
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits for `text` on the screen, then types `keys` (tmux key names).
async fn answer(session: &str, text: &str, keys: &[&str]) {
    for _ in 0..100 {
        if screen(session).contains(text) {
            let typed = Command::new("tmux")
                .args(["send-keys", "-t", session])
                .args(keys)
                .status();
            assert!(typed.expect("tmux").success());
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{text:?} never showed:\n{}", screen(session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asked_on_a_terminal_it_writes_what_the_flags_write() {
    let ghl = ghl().await;
    let dir = tempfile::tempdir().expect("dir");
    let flagged = dir.path().join("flags.toml");
    let out = by_flags(&ghl, dir.path(), &flagged);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let asked = dir.path().join("asked.toml");
    let command = init(&ghl, dir.path());
    let mut line = vec![command.get_program().to_string_lossy().into_owned()];
    line.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.extend([
        "--output".into(),
        asked.display().to_string(),
        "--preview".into(),
        "0".into(),
    ]);
    let session = format!("init-{}", std::process::id());
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-x", "160", "-y", "40", "-s", &session])
        .args(["-e", &format!("GHL_API_BASE_URL={}", ghl.uri())])
        .args(["-e", &format!("GHL_TOKEN_{LOCATION}=pit-init")])
        .arg(format!(
            "{}; sleep 30",
            line.iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ))
        .status()
        .expect("tmux runs");
    assert!(started.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());
    // Templates: the first three, as the flags chose.
    answer(
        &session,
        "What should it send?",
        &[
            "Space", "Down", "Space", "Down", "Space", "Down", "Space", "Enter",
        ],
    )
    .await;
    answer(&session, "pixel's name", &["Enter"]).await;
    answer(&session, "dataset id", &["1234567890", "Enter"]).await;
    answer(&session, "token kept", &["env:META_TOKEN", "Enter"]).await;
    answer(&session, "currency", &["EUR", "Enter"]).await;
    // Renewals is listed first: Sales is the second.
    answer(&session, "Which pipeline", &["Down", "Enter"]).await;
    answer(&session, "new lead", &["Enter"]).await;
    // Qualified, Booked, Won: the first.
    answer(&session, "later stages", &["Space", "Enter"]).await;
    // Demo, Consultation: the second.
    answer(&session, "bookings count", &["Down", "Space", "Enter"]).await;
    // newsletter, vip: the second, and its audience.
    answer(&session, "Which tags feed", &["Down", "Space", "Enter"]).await;
    answer(&session, "Audience id for tag vip", &["23850001", "Enter"]).await;
    answer(&session, "audiences' token", &["env:ADS_TOKEN", "Enter"]).await;
    for _ in 0..100 {
        if screen(&session).contains("wrote") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(screen(&session).contains("wrote"), "{}", screen(&session));
    assert_eq!(
        std::fs::read_to_string(&asked).expect("written on the terminal"),
        std::fs::read_to_string(&flagged).expect("written by flags")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_replays_recent_contacts_through_both_versions_and_publish_shows_it_first() {
    let ghl = ghl().await;
    let dir = tempfile::tempdir().expect("dir");
    let old = dir.path().join("old.toml");
    let out = by_flags(&ghl, dir.path(), &old);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&old).expect("written");
    let new = dir.path().join("new.toml");
    std::fs::write(
        &new,
        text.replace("stage = \"Qualified\"", "stage = \"Booked\""),
    )
    .expect("written");

    let diff = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["mapping", "diff"])
        .args([&old, &new])
        .args(["--location", LOCATION, "--data-dir"])
        .arg(dir.path().join("data"))
        .env("GHL_API_BASE_URL", ghl.uri())
        .env(format!("GHL_TOKEN_{LOCATION}"), "pit-init")
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(said.contains("2 recent contact(s) replayed"), "{said}");
    assert!(
        said.contains("- Qualified (stage-qualified): stops for 1 contact(s): c-2"),
        "{said}"
    );
    assert!(
        !said.contains("Schedule"),
        "c-1's booking is sent either way: {said}"
    );

    // Published with --location: the same replay, before it goes live.
    let live = dir.path().join("live.toml");
    std::fs::copy(&old, &live).expect("copied");
    // `mapping publish FILE` over `live`, replaying the location's contacts.
    let publish = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .args(["mapping", "publish"])
            .arg(file)
            .arg("--mapping")
            .arg(&live)
            .args(["--location", LOCATION, "--yes"])
            .env("GHL_API_BASE_URL", ghl.uri())
            .env(format!("GHL_TOKEN_{LOCATION}"), "pit-init")
            .output()
            .expect("runs")
    };
    let published = publish(&new);
    let said = String::from_utf8_lossy(&published.stdout);
    assert!(
        published.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let replayed = said
        .find("stops for 1 contact(s): c-2")
        .expect("the replay");
    assert!(
        replayed < said.find("published version").expect("published"),
        "{said}"
    );

    // A version naming a stage the location lacks is checked against its names
    // and not published.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        text.replace("stage = \"Qualified\"", "stage = \"Hot\""),
    )
    .expect("written");
    let refused = publish(&wrong);
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains(r#"! rule stage-qualified: no stage "Hot" in pipeline "Sales""#),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&live).expect("live"),
        std::fs::read_to_string(&new).expect("new"),
        "the live version stays"
    );
}
