//! What a million events cost as deployed, counted (`bench/cost` runs it). Each
//! workload goes through the three handlers over moto, as the stack tests run them:
//! every AWS request a handler makes is recorded with its body, and the calls
//! Lambda's SQS poller makes for each batch (a receive and a delete per ten
//! messages) are added; each invocation's log and EMF bytes are counted as the
//! functions write them, plus Lambda's own lines the template keeps; each
//! invocation's billed time is its time over moto (GHL's stand-in answering after
//! GHL's latency, so reads made side by side are waited for once), its CPU
//! stretched to the share of a vCPU its memory buys, and each Graph call's latency.
//! [`units`] turns what was sent into billable units; [`prices`] prices them;
//! [`month`] adds what a deployment costs a month whatever its events.

mod month;
mod prices;
mod units;

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::Utc;
use ghl_capi_tests::audience_stand_in::AudienceStandIn;
use ghl_capi_tests::contacts_stand_in::ContactsStandIn;
use ghl_capi_tests::fixtures::{LOCATION, VIP_AUDIENCE, webhook, workflow_call};
use serde_json::json;

use crate::iam::Calls;
use crate::stack::{API_KEY, Stack};
use crate::template::{template, text};
use units::{Items, LOG_EVENT_OVERHEAD, Units};

/// One pixel and an audience; a rule that reads the contact (its attribution, as
/// every rule does by default), one that reads nothing on a tag, and one on a GHL
/// workflow's call, which carries the contact.
pub(crate) const MAPPING: &str = r#"
version = 1

[defaults]
action_source = "system_generated"
currency = "USD"

[[pixels]]
name = "main"
dataset_id = "1234567890"
access_token = { secret = "{stack}/meta/main" }

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
name = "booked"
trigger = "workflow.fired"
workflow = ["Booked call"]
event_name = "Schedule"
value = { field = "workflow.value" }
needs = []

[[audiences]]
name = "vips"
audience_id = "23851234567890123"
access_token = { secret = "{stack}/meta/main" }
tags = ["vip"]
"#;

/// What one event is: the request GHL (or a person's system) sends.
#[derive(Clone, Copy)]
enum Workload {
    /// A new contact, its attribution read from GHL.
    NewLead,
    /// A contact tagged `vip`: an event, and the contact added to an audience.
    Tagged,
    /// A conversion a GHL workflow posts (its Webhook action, carrying the
    /// contact): nothing to read from GHL. (One posted to `/contacts/{id}/conversions`
    /// carries no contact, so it is read, as a new lead's is.)
    Posted,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::NewLead => "new lead, one GHL read",
            Workload::Tagged => "tag change moving an audience",
            Workload::Posted => "conversion posted by a workflow, no GHL read",
        }
    }
}

/// How Lambda gathers batches.
#[derive(Clone, Copy, PartialEq)]
enum Pace {
    /// Queues never empty: batches as full as the template lets them be (10
    /// jobs; up to 1,000 events).
    Busy,
    /// Every event alone through each function.
    Trickle,
}

/// What the model assumes of the deployment: the template's memory and
/// architecture, and the partners' latency (GHL's stand-in answers after it; a
/// Graph call, made one at a time, is counted at it).
pub(crate) struct Deployed {
    pub(crate) memory_mb: f64,
    pub(crate) arm: bool,
    /// Whether Lambda writes its own start and report lines (its system log level
    /// INFO or DEBUG; the template's default, WARN, leaves them out).
    pub(crate) system_lines: bool,
    pub(crate) ghl_ms: f64,
    pub(crate) meta_ms: f64,
}

/// Lambda gives one vCPU at 1,769 MB, less in proportion.
const FULL_CPU_MB: f64 = 1769.0;
/// Lambda's start and report lines as its JSON log format writes them, measured
/// from AWS's documented examples with a request id of 36 characters.
const SYSTEM_LINES: [&str; 2] = [
    r#"{"time":"2026-12-07T10:00:00.000Z","type":"platform.start","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","version":"$LATEST"}}"#,
    r#"{"time":"2026-12-07T10:00:00.050Z","type":"platform.report","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","metrics":{"durationMs":48.123,"billedDurationMs":49,"memorySizeMB":128,"maxMemoryUsedMB":21},"status":"success"}}"#,
];

impl Deployed {
    fn from_template() -> Deployed {
        let t = template();
        let default = |name: &str| text(&t["Parameters"][name]["Default"]);
        // The functions' system log level: a level, or the parameter naming it
        // (`COST_SYSTEM_LOG_LEVEL` stands for a deploy that sets it).
        let chosen = std::env::var("COST_SYSTEM_LOG_LEVEL").ok();
        let levels: Vec<String> = ["IntakeFunction", "EnrichmentFunction", "DispatchFunction"]
            .iter()
            .map(|f| {
                let config = &t["Resources"][*f]["Properties"]["LoggingConfig"];
                let level = config["SystemLogLevel"].as_str().unwrap_or("INFO");
                match (&chosen, t["Parameters"][level]["Default"].as_str()) {
                    (Some(chosen), Some(_)) => chosen.clone(),
                    (None, Some(default)) => default.to_owned(),
                    (_, None) => level.to_owned(),
                }
            })
            .collect();
        let env = |name: &str, default: f64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Deployed {
            memory_mb: default("FunctionMemory").parse().expect("a number"),
            arm: default("Architecture") == "arm64",
            system_lines: levels.iter().any(|l| l != "WARN"),
            ghl_ms: env("COST_GHL_MS", 300.0),
            meta_ms: env("COST_META_MS", 400.0),
        }
    }
}

/// Bytes and lines a writer was given.
#[derive(Clone, Default)]
struct Written(Arc<Mutex<(usize, usize)>>);

impl Write for Written {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut written = self.0.lock().expect("lock");
        written.0 += bytes.len();
        written.1 += bytes.iter().filter(|b| **b == b'\n').count();
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Written {
    fn now(&self) -> (usize, usize) {
        *self.0.lock().expect("lock")
    }
}

/// Nanoseconds this thread has run on a CPU.
fn cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    stat.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("on-CPU time")
}

/// One workload's run: the stack, its stand-ins, and what was counted.
struct Run<'a> {
    s: &'a Stack,
    deployed: &'a Deployed,
    ghl: ContactsStandIn,
    audience: AudienceStandIn,
    logs: Written,
    emf: &'a crate::common::Emf,
    items: Items,
    units: Units,
}

impl Run<'_> {
    /// Partner calls so far: GHL's, Meta's.
    async fn partner_calls(&self) -> (usize, usize) {
        let ghl = self.s.ghl.received_requests().await.map_or(0, |r| r.len());
        let meta = self
            .s
            .graph
            .received_requests()
            .await
            .map_or(0, |r| r.len());
        (ghl, meta)
    }

    /// One invocation of a function whose AWS calls `calls` records, `work` running
    /// it: its time, logs and AWS requests counted.
    async fn invoke<'w, T>(
        &mut self,
        calls: &Calls,
        work: Pin<Box<dyn Future<Output = T> + 'w>>,
    ) -> T {
        let (logs, emf, partners) = (
            self.logs.now(),
            self.emf.written(),
            self.partner_calls().await,
        );
        let (cpu, started) = (cpu_ns(), Instant::now());
        let out = work.await;
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        let cpu = (cpu_ns() - cpu) as f64 / 1e6;
        let called = self.partner_calls().await;
        let d = self.deployed;
        let ms = wall
            + cpu * (FULL_CPU_MB / d.memory_mb - 1.0).max(0.0)
            + (called.1 - partners.1) as f64 * d.meta_ms;
        self.units.invocations += 1.0;
        // Lambda bills whole milliseconds.
        self.units.gb_seconds += d.memory_mb / 1024.0 * ms.ceil() / 1000.0;
        let ((bytes, lines), (emf_bytes, emf_lines)) = (self.logs.now(), self.emf.written());
        let mut logged = bytes - logs.0 + emf_bytes - emf.0;
        logged += (lines - logs.1 + emf_lines - emf.1) * LOG_EVENT_OVERHEAD;
        if d.system_lines {
            logged += SYSTEM_LINES
                .iter()
                .map(|l| l.len() + LOG_EVENT_OVERHEAD)
                .sum::<usize>();
        }
        self.units.log_bytes += logged as f64;
        let sent = calls.take();
        self.units.add(&units::of(&sent, &mut self.items));
        out
    }

    /// One event sent to the intake, as `workload` makes it.
    async fn send(&mut self, workload: Workload, n: usize) {
        let s = self.s;
        let contact = format!("c{n}");
        let status = match workload {
            Workload::NewLead | Workload::Tagged => {
                let kind = if let Workload::NewLead = workload {
                    self.ghl.create(&contact, &["lead"], Utc::now());
                    "ContactCreate"
                } else {
                    // Created before the counted run: the tag is a change.
                    self.ghl.retag(&contact, &["lead", "vip"], Utc::now());
                    "ContactTagUpdate"
                };
                let id = format!("wh-{kind}-{n}");
                let body = webhook(kind, &id, self.ghl.contact(&contact));
                self.invoke(&s.calls[0].1, Box::pin(s.deliver(body)))
                    .await
                    .0
            }
            Workload::Posted => {
                let mut call = workflow_call("standard");
                call["contact_id"] = json!(contact);
                call["email"] = json!(format!("{contact}@example.com"));
                let body = serde_json::to_vec(&call).expect("json");
                let key = [("x-api-key", API_KEY.to_owned())];
                self.invoke(
                    &s.calls[0].1,
                    Box::pin(s.post("/workflows/ghl", &key, body)),
                )
                .await
                .0
            }
        };
        assert!(
            status == 200 || status == 202,
            "the intake took it: {status}"
        );
        // API Gateway bills each 512 KB of a request as one.
        self.units.api_requests += 1.0;
    }

    /// Runs both consumers as Lambda would, batches gathered up to `jobs` and
    /// `events`, until both queues are empty.
    async fn drain(&mut self, jobs: usize, events: usize) {
        let s = self.s;
        loop {
            let batch = s.receive_up_to(&s.enrich_url, jobs).await;
            if !batch.records.is_empty() {
                self.polled(&s.enrich_url, &batch);
                let answer = self
                    .invoke(&s.calls[1].1, Box::pin(s.enrichment.handle(&batch)))
                    .await;
                assert!(answer.batch_item_failures.is_empty(), "nothing failed");
                s.delete_done(&s.enrich_url, &batch, &answer).await;
                continue;
            }
            let batch = s.receive_up_to(&s.dispatch_url, events).await;
            if batch.records.is_empty() {
                return;
            }
            self.polled(&s.dispatch_url, &batch);
            let answer = self
                .invoke(&s.calls[2].1, Box::pin(s.dispatch.handle(&batch)))
                .await;
            assert!(answer.batch_item_failures.is_empty(), "nothing failed");
            s.delete_done(&s.dispatch_url, &batch, &answer).await;
        }
    }

    /// What Lambda's poller sends SQS for `batch`: a receive and a delete per ten
    /// messages (each receive carrying their bodies).
    fn polled(&mut self, url: &str, batch: &SqsEvent) {
        for ten in batch.records.chunks(10) {
            let payload = ten
                .iter()
                .map(|m| m.body.as_deref().map_or(0, str::len))
                .sum();
            self.units.sqs(url, payload);
            self.units.sqs(url, 0);
        }
    }
}

/// One workload at one pace on a fresh stack: its units per event, and what
/// reached the partners.
async fn run(
    workload: Workload,
    pace: Pace,
    events: usize,
    deployed: &Deployed,
    logs: &Written,
    emf: &crate::common::Emf,
) -> (Units, String) {
    // The mapping is looked for as often as deployed (the tests' stack: each second).
    let refresh = [("MAPPING_REFRESH_SECONDS", "30".to_owned())];
    let s = Stack::with_mapping(MAPPING, &refresh).await;
    let ghl = ContactsStandIn::new(LOCATION);
    ghl.answer_after(Duration::from_secs_f64(deployed.ghl_ms / 1000.0));
    ghl.mount(&s.ghl).await;
    let audience = AudienceStandIn::expecting_token("EAAB-main");
    audience.mount(&s.graph, VIP_AUDIENCE).await;
    // Each function's construction is a cold start's cost, not an event's: what
    // it sent is not kept.
    for (_, calls) in &s.calls {
        calls.keep();
    }
    let mut run = Run {
        s: &s,
        deployed,
        ghl,
        audience,
        logs: logs.clone(),
        emf,
        items: Items::default(),
        units: Units::default(),
    };
    // Each function's first calls (its secrets, its mapping) are a cold start's
    // cost, not an event's: a few events go through first, uncounted. A tag is a
    // change only of a contact seen before.
    const WARM: usize = 10;
    if let Workload::Tagged = workload {
        for n in 0..events + WARM {
            run.send(Workload::NewLead, n).await;
        }
        run.drain(10, 1000).await;
    }
    for n in events..events + WARM {
        run.send(workload, n).await;
    }
    run.drain(10, 1000).await;
    run.units = Units::default();
    let (ghl_before, graph_before) = run.partner_calls().await;
    let (events_before, rows_before) = (s.meta.events().len(), run.audience.taken().len());
    for n in 0..events {
        run.send(workload, n).await;
        if pace == Pace::Trickle {
            run.drain(1, 1).await;
        }
    }
    run.drain(10, 1000).await;
    let (ghl, graph) = run.partner_calls().await;
    let seen = format!(
        "{} events at Meta, {} audience requests, {} GHL and {} Graph requests",
        s.meta.events().len() - events_before,
        run.audience.taken().len() - rows_before,
        ghl - ghl_before,
        graph - graph_before,
    );
    (run.units.per(events as f64), seen)
}

/// A location's scheduled reconciliation run, `runs` times after its baseline (a
/// location's once): its units per run, quiet (nothing changed since the run
/// before) and active (a contact changed since, its webhook delivered, so found
/// already told of). The listing starts a second before the watermark, and each
/// change is made more than a second before its run, so it is listed once; the
/// template's 600 s overlap lists a change again in the next run. Run it first: after the baseline it empties the metrics captured
/// so far, as a baseline's series is published once in a location's life, not
/// every hour.
async fn reconciled(
    deployed: &Deployed,
    logs: &Written,
    emf: &crate::common::Emf,
    runs: usize,
) -> (Units, Units) {
    let overlap = [("RECONCILE_OVERLAP_SECONDS", "1".to_owned())];
    let s = Stack::with_mapping(MAPPING, &overlap).await;
    let ghl = ContactsStandIn::new(LOCATION);
    ghl.answer_after(Duration::from_secs_f64(deployed.ghl_ms / 1000.0));
    let long_ago = Utc::now() - chrono::Duration::days(3);
    for n in 0..runs {
        ghl.create(&format!("c{n}"), &["lead"], long_ago);
    }
    ghl.mount(&s.ghl).await;
    let (function, calls) = crate::reconcile::reconciliation(&s).await;
    calls.keep();
    let deadline = || Instant::now() + Duration::from_secs(600);
    let baseline = function.handle(deadline()).await.expect("the baseline");
    assert_eq!(baseline["locations"], 1, "{baseline}");
    calls.take();
    crate::common::Emf::start();
    let mut run = Run {
        s: &s,
        deployed,
        ghl,
        audience: AudienceStandIn::expecting_token("EAAB-main"),
        logs: logs.clone(),
        emf,
        items: Items::default(),
        units: Units::default(),
    };
    let (mut quiet, mut active) = (Units::default(), Units::default());
    for _ in 0..runs {
        let out = run
            .invoke(&calls, Box::pin(function.handle(deadline())))
            .await;
        assert_eq!(out.expect("a run")["changed"], 0);
    }
    quiet.add(&run.units);
    for n in 0..runs {
        let contact = format!("c{n}");
        run.ghl.retag(&contact, &["lead", "customer"], Utc::now());
        let told = webhook(
            "ContactTagUpdate",
            &format!("wh-{n}"),
            run.ghl.contact(&contact),
        );
        assert_eq!(s.deliver(told).await.0, 200);
        s.drain().await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        run.units = Units::default();
        let out = run
            .invoke(&calls, Box::pin(function.handle(deadline())))
            .await;
        let out = out.expect("a run");
        assert_eq!(out["changed"], 0, "the webhook told of it: {out}");
        active.add(&run.units);
    }
    (quiet.per(runs as f64), active.per(runs as f64))
}

#[tokio::test]
#[ignore = "a benchmark: bench/cost runs it"]
async fn what_a_million_events_cost() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let logs = Written::default();
    let writer = logs.clone();
    let subscriber = ghl_capi_aws::lambda::json_logs(move || writer.clone()).finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    // `METRIC_DETAIL` stands for a stack deployed with `MetricDetail` set.
    let detail = ghl_capi::settings::metric_detail(|name| std::env::var(name).ok())
        .expect("METRIC_DETAIL is each or total");
    ghl_capi::telemetry::keep_apart(detail);
    let deployed = Deployed::from_template();
    let events = std::env::var("COST_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let (quiet, active) = reconciled(&deployed, &logs, &emf, 10).await;
    let every = text(&template()["Parameters"]["ReconcileMinutes"]["Default"]);
    let every: f64 = every.parse().expect("minutes");
    let mut report = prices::Report::new(&deployed, events);
    for workload in [Workload::NewLead, Workload::Tagged, Workload::Posted] {
        for pace in [Pace::Busy, Pace::Trickle] {
            let (units, seen) = run(workload, pace, events, &deployed, &logs, &emf).await;
            report.add(workload.name(), pace == Pace::Busy, units, seen);
        }
    }
    let locations = std::env::var("COST_LOCATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let reconciliation = month::Reconciliation {
        every,
        quiet: prices::dollars(deployed.arm, &quiet) / 1e6,
        active: prices::dollars(deployed.arm, &active) / 1e6,
        units: active,
    };
    let series = month::Series::of(&emf.series());
    let month = month::Month::new(series, reconciliation, locations, detail);
    ghl_capi::telemetry::keep_apart(ghl_capi::telemetry::Detail::Each);
    println!("{report}\n{month}");
    for (workload, busy, dollars) in report.totals() {
        let pace = if busy { "busy" } else { "trickle" };
        println!("{workload} ({pace}): ${dollars:.2} a million events");
    }
    for &n in month.sizes() {
        println!(
            "{n} sub-account{}: ${:.2} a month whatever the events",
            if n == 1 { "" } else { "s" },
            month.dollars(n)
        );
    }
}
