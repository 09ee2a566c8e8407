//! The functions as Lambda runs them, measured: each release binary under a
//! stand-in of Lambda's Runtime API, over the stack's moto and stand-ins, handed its
//! heaviest invocation (the largest webhook the intake accepts; ten enrichment jobs
//! reading notes, tasks and appointments; a dispatch batch of 1,000 events; a
//! scheduled reconciliation and token refresh). Init is the time from the process's
//! start to its first request for work; peak RSS is the kernel's high-water mark
//! (`VmHWM`) once the invocation is answered. A benchmark, not a test:
//! `bench/lambda-memory.sh` builds the binaries and runs it (`LAMBDA_BINARIES`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use ghl_capi::ports::mappings::MappingStore;
use ghl_capi_tests::fixtures::{self, contact, padded_webhook, webhook};
use ghl_capi_tests::{moto, signing};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::stack::{Stack, ghl_has};

/// A rule reading everything GHL has of a contact.
const READS_ALL: &str = r#"
[[rules]]
name = "everything"
trigger = "contact.created"
event_name = "Contact"
needs = ["attribution", "notes", "tasks", "appointments"]
"#;

/// What the function asked and answered.
#[derive(Debug, Default)]
struct Invocation {
    event: Option<Value>,
    asked: Option<Instant>,
    answered: Option<(Instant, String, Value)>,
}

/// Lambda's Runtime API, handing out one invocation.
struct RuntimeApi {
    server: MockServer,
    invocation: Arc<Mutex<Invocation>>,
}

struct Next(Arc<Mutex<Invocation>>);

impl Respond for Next {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut invocation = self.0.lock().expect("lock");
        invocation.asked.get_or_insert_with(Instant::now);
        let Some(event) = invocation.event.take() else {
            // No more work: the call hangs, as Lambda's does, until the process is
            // stopped (a moment later: measured by then).
            return ResponseTemplate::new(200).set_delay(Duration::from_secs(10));
        };
        let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
        ResponseTemplate::new(200)
            .insert_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
            .insert_header("Lambda-Runtime-Deadline-Ms", deadline.to_string().as_str())
            .insert_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            .insert_header(
                "Lambda-Runtime-Trace-Id",
                "Root=1-00000000-000000000000000000000000",
            )
            .set_body_json(event)
    }
}

struct Answer(Arc<Mutex<Invocation>>, &'static str);

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut invocation = self.0.lock().expect("lock");
        invocation.answered = Some((Instant::now(), self.1.to_owned(), body));
        ResponseTemplate::new(202)
    }
}

impl RuntimeApi {
    async fn handing(event: Value) -> Self {
        let server = MockServer::start().await;
        let invocation = Arc::new(Mutex::new(Invocation {
            event: Some(event),
            ..Invocation::default()
        }));
        let base = "/2018-06-01/runtime";
        Mock::given(method("GET"))
            .and(path(format!("{base}/invocation/next")))
            .respond_with(Next(invocation.clone()))
            .mount(&server)
            .await;
        for (route, kind) in [
            (r"/invocation/[^/]+/response$", "response"),
            (r"/invocation/[^/]+/error$", "error"),
            (r"/init/error$", "init error"),
        ] {
            Mock::given(method("POST"))
                .and(path_regex(format!("^{base}{route}")))
                .respond_with(Answer(invocation.clone(), kind))
                .mount(&server)
                .await;
        }
        RuntimeApi { server, invocation }
    }
}

/// One function's figures.
#[derive(Debug)]
struct Measured {
    init: Duration,
    handled: Duration,
    /// On-CPU time of every thread, from start to answer.
    cpu: Duration,
    peak_kb: u64,
    answer: Value,
}

/// The process's threads' time on a CPU so far (`schedstat`, in nanoseconds).
fn cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    let nanos = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

fn peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb = line.split_whitespace().nth(1).expect("a number");
    kb.parse().expect("kB")
}

/// `binary` run once as Lambda runs it, with `vars`, handed `event`.
async fn measure(binary: &Path, vars: &HashMap<&str, String>, event: Value) -> Measured {
    let api = RuntimeApi::handing(event).await;
    let address = api.server.address().to_string();
    let mut command = Command::new(binary);
    moto::at_moto(&mut command)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("the function starts");
    let give_up = started + Duration::from_secs(120);
    let (asked, (done, kind, answer)) = loop {
        let answered = {
            let invocation = api.invocation.lock().expect("lock");
            invocation.asked.zip(invocation.answered.clone())
        };
        if let Some(answered) = answered {
            break answered;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{} ended early: {status}", binary.display());
        }
        assert!(
            Instant::now() < give_up,
            "{} never answered",
            binary.display()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (peak, on_cpu) = (peak_kb(child.id()), cpu(child.id()));
    child.kill().expect("killed");
    let ended = child.wait_with_output().expect("reaped");
    let log = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(kind, "response", "{}: {answer}\n{log}", binary.display());
    Measured {
        init: asked - started,
        handled: done - asked,
        cpu: on_cpu,
        peak_kb: peak,
        answer,
    }
}

/// An API Gateway HTTP API (payload 2.0) request posting `body` to `route`.
fn http_event(route: &str, headers: Value, body: &[u8]) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": route, "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.example.com",
            "domainPrefix": "bench", "requestId": "bench-1", "routeKey": "$default",
            "stage": "$default", "time": "07/Dec/2026:05:00:00 +0000", "timeEpoch": 1796619600000i64,
            "http": {"method": "POST", "path": route, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "GoHighLevel"}
        },
        "body": String::from_utf8_lossy(body), "isBase64Encoded": false
    })
}

/// A list of `n` GHL records under `key`, each with a few hundred bytes of text.
fn records(key: &str, n: usize) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{key}-{i}"), "body": "a note a person wrote ".repeat(12),
                "title": format!("{key} {i}"), "dateAdded": "2026-12-01T10:00:00Z",
                "startTime": "2026-12-09T10:00:00Z", "appointmentStatus": "confirmed",
                "calendarId": "cal-1", "completed": false})
        })
        .collect();
    json!({ key: list })
}

/// The SQS event `event` with its records repeated up to `n`, each its own.
fn repeated(event: &SqsEvent, n: usize) -> Value {
    let mut records = Vec::new();
    for i in 0..n {
        let mut record =
            serde_json::to_value(&event.records[i % event.records.len()]).expect("record");
        let mut job: Value =
            serde_json::from_str(record["body"].as_str().expect("body")).expect("job");
        job["event"]["event_id"] = json!(format!("bench-{i}"));
        job["contact_id"] = json!(format!("c-{i}"));
        record["body"] = json!(job.to_string());
        record["messageId"] = json!(format!("m-{i}"));
        records.push(record);
    }
    json!({ "Records": records })
}

#[tokio::test]
#[ignore = "a benchmark: bench/lambda-memory.sh builds the release binaries and runs it"]
async fn each_function_under_its_heaviest_work() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let binaries = PathBuf::from(std::env::var("LAMBDA_BINARIES").expect("LAMBDA_BINARIES"));
    let s = Stack::with(READS_ALL, &[]).await;
    for what in ["notes", "tasks", "events"] {
        let route = if what == "events" {
            "appointments"
        } else {
            what
        };
        Mock::given(method("GET"))
            .and(path_regex(format!("^/contacts/[^/]+/{route}$")))
            .respond_with(ResponseTemplate::new(200).set_body_json(records(what, 50)))
            .mount(&s.ghl)
            .await;
    }
    let mut figures = Vec::new();

    let largest = padded_webhook(
        "ContactCreate",
        "wh-largest",
        contact("c-large", "large@example.com", &[]),
        ghl_capi::jobs::MAX_JOB_BYTES,
    );
    let headers = json!({"content-type": "application/json",
        "x-ghl-signature": signing::sign(&largest)});
    let event = http_event("/webhooks/ghl", headers, &largest);
    let intake = measure(&binaries.join("webhook-intake"), &s.vars, event).await;
    assert_eq!(intake.answer["statusCode"], 200, "{}", intake.answer);
    figures.push((
        "webhook-intake",
        "the largest webhook accepted (1 MB as a job)",
        intake,
    ));

    // Ten new contacts, queued by the intake as GHL's webhooks.
    s.receive_up_to(&s.enrich_url, usize::MAX).await;
    for i in 0..10 {
        let person = contact(&format!("c{i}"), &format!("p{i}@example.com"), &[]);
        ghl_has(&s.ghl, &person).await;
        let body = webhook("ContactCreate", &format!("wh-{i}"), person);
        assert_eq!(s.deliver(body).await.0, 200);
    }
    let jobs = s.receive(&s.enrich_url).await;
    assert_eq!(jobs.records.len(), 10);
    let event = serde_json::to_value(&jobs).expect("event");
    let enrichment = measure(&binaries.join("contact-enrichment"), &s.vars, event).await;
    assert_eq!(
        enrichment.answer["batchItemFailures"],
        json!([]),
        "{}",
        enrichment.answer
    );
    figures.push((
        "contact-enrichment",
        "10 jobs, each reading 50 notes, tasks and appointments",
        enrichment,
    ));

    let built = s.receive_up_to(&s.dispatch_url, usize::MAX).await;
    assert!(!built.records.is_empty(), "enrichment queued events");
    let event = repeated(&built, 1000);
    let dispatch = measure(&binaries.join("facebook-dispatch"), &s.vars, event).await;
    assert_eq!(
        dispatch.answer["batchItemFailures"],
        json!([]),
        "{}",
        dispatch.answer
    );
    assert!(s.meta.events().len() >= 1000, "Meta took the batch");
    figures.push(("facebook-dispatch", "a batch of 1,000 events", dispatch));

    let scheduled = json!({"version": "0", "id": "bench", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-12-07T05:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}});
    let mut vars = s.vars.clone();
    let app_secret = format!("{}/ghl-app", s.id);
    let app = fixtures::oauth_app();
    let credentials = json!({"client_id": app.client_id, "client_secret": app.client_secret});
    moto::secret(&s.secrets, &app_secret, &credentials.to_string()).await;
    vars.insert("GHL_APP_SECRET", app_secret);
    let refresh = measure(&binaries.join("token-refresh"), &vars, scheduled.clone()).await;
    figures.push(("token-refresh", "a scheduled run, one location", refresh));
    // The location's first run: its baseline of contacts and opportunities.
    Mock::given(method("POST"))
        .and(path("/contacts/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contacts": [], "total": 0})))
        .mount(&s.ghl)
        .await;
    Mock::given(method("GET"))
        .and(path("/opportunities/search"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"opportunities": [], "meta": {"total": 0}})),
        )
        .mount(&s.ghl)
        .await;
    let reconcile = measure(&binaries.join("reconcile"), &s.vars, scheduled).await;
    figures.push(("reconcile", "a scheduled run, one location", reconcile));

    // The baseline: the read of the mapping a function makes at cold start, made
    // here against the same moto (median of five).
    let mappings = s.mappings().await;
    let mut reads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        mappings.live().await.expect("the mapping");
        reads.push(started.elapsed());
    }
    reads.sort();
    let baseline = reads[2].as_secs_f64() * 1000.0;
    println!("\nbaseline: the mapping's read from moto's S3, as at cold start: {baseline:.1} ms");
    println!(
        "\n| function | heaviest work | init | init ÷ baseline | handled in | on CPU | peak RSS | 2× peak | memory to set |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (function, work, m) in &figures {
        let peak_mb = m.peak_kb as f64 / 1024.0;
        let needed = (2.0 * peak_mb).ceil().max(128.0);
        let init = m.init.as_secs_f64() * 1000.0;
        println!(
            "| {function} | {work} | {init:.1} ms | {:.1} | {:.1} ms | {:.1} ms | {peak_mb:.1} MB | {:.1} MB | {needed} MB |",
            init / baseline,
            m.handled.as_secs_f64() * 1000.0,
            m.cpu.as_secs_f64() * 1000.0,
            2.0 * peak_mb,
        );
    }
}
