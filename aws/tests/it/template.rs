//! The wiring of `template.yaml`, checked against the code: each function's settings
//! load from the environment the template gives it, it may send to every queue it
//! sends to, its SQS sources report batch item failures and hide messages long
//! enough, and nothing is granted on every resource but what AWS forces.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use ghl_capi::settings::{
    DispatchSettings, EnrichSettings, IntakeSettings, METRIC_DETAIL_VAR, ReconcileFnSettings,
    RefreshSettings, metric_detail,
};
use ghl_capi::telemetry::Detail;
use yaml_rust2::{Yaml, YamlLoader};

/// The template, with CloudFormation's short-form tags dropped by the parser
/// (`!Ref X` reads as `"X"`, `!GetAtt X.Arn` as `"X.Arn"`, `!If [c, a, b]` as a list).
pub(crate) fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

pub(crate) fn text(y: &Yaml) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        // `!If [condition, then, else]`: the case where the condition holds.
        Yaml::Array(list) if list.len() == 3 => text(&list[1]),
        other => panic!("unexpected value {other:?}"),
    }
}

pub(crate) fn list(y: &Yaml) -> Vec<Yaml> {
    match y {
        Yaml::Array(items) => items.clone(),
        Yaml::BadValue => vec![],
        one => vec![one.clone()],
    }
}

/// What a `!Ref` in an environment variable stands for when the stack runs.
fn resolve(template: &Yaml, reference: &str) -> String {
    let resources = &template["Resources"];
    let parameters = &template["Parameters"];
    if !parameters[reference].is_badvalue() {
        // A parameter without a default is one a deploy must give (the template's
        // Rules say when): stand in for it.
        let default = text(&parameters[reference]["Default"]);
        return if default.is_empty() {
            format!("value-of-{reference}")
        } else {
            default
        };
    }
    match resources[reference]["Type"].as_str() {
        Some("AWS::SQS::Queue") => {
            format!("https://sqs.us-east-1.amazonaws.com/123456789012/{reference}")
        }
        Some(_) => format!("arn-or-name-of-{reference}"),
        // Not a resource or parameter: a literal (or a `!Sub` text).
        None => reference.to_owned(),
    }
}

/// The function's environment as it runs, and the names the code asked for.
fn environment(template: &Yaml, function: &str) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for vars in [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &template["Resources"][function]["Properties"]["Environment"]["Variables"],
    ] {
        if let Yaml::Hash(vars) = vars {
            for (name, value) in vars {
                env.insert(text(name), resolve(template, &text(value)));
            }
        }
    }
    env
}

/// Loads settings with `load` from the function's template environment; returns
/// the variables the code read.
fn loads<T, E: std::fmt::Display>(
    template: &Yaml,
    function: &str,
    load: impl Fn(&dyn Fn(&str) -> Option<String>) -> Result<T, E>,
) -> BTreeSet<String> {
    let env = environment(template, function);
    let asked = Mutex::new(BTreeSet::new());
    let lookup = |name: &str| {
        asked.lock().expect("lock").insert(name.to_owned());
        env.get(name).cloned()
    };
    if let Err(e) = load(&lookup) {
        panic!("{function} does not start with the template's environment: {e}");
    }
    // Every function reads it at cold start, with its logging.
    if let Err(e) = metric_detail(lookup) {
        panic!("{function} does not start with the template's environment: {e}");
    }
    let asked = asked.into_inner().expect("lock");
    for name in env.keys().filter(|n| *n != "RUST_LOG") {
        assert!(
            asked.contains(name),
            "{function}: the template sets {name}, which the code never reads"
        );
    }
    asked
}

const FUNCTIONS: [&str; 5] = [
    "IntakeFunction",
    "EnrichmentFunction",
    "DispatchFunction",
    "TokenRefreshFunction",
    "ReconcileFunction",
];

#[test]
fn every_function_starts_with_the_environment_the_template_gives_it() {
    let t = template();
    loads(&t, "IntakeFunction", |l| IntakeSettings::from_lookup(l));
    loads(&t, "EnrichmentFunction", |l| EnrichSettings::from_lookup(l));
    loads(&t, "DispatchFunction", |l| DispatchSettings::from_lookup(l));
    loads(&t, "TokenRefreshFunction", |l| {
        RefreshSettings::from_lookup(l)
    });
    loads(&t, "ReconcileFunction", |l| {
        ReconcileFnSettings::from_lookup(l)
    });
}

#[test]
fn every_metric_detail_a_deploy_may_choose_is_read() {
    let t = template();
    let detail = &t["Parameters"]["MetricDetail"];
    let read =
        |value: &str| metric_detail(|name| (name == METRIC_DETAIL_VAR).then(|| value.to_owned()));
    assert_eq!(
        read(&text(&detail["Default"])).expect("the default"),
        Detail::Each
    );
    let allowed: Vec<Detail> = list(&detail["AllowedValues"])
        .iter()
        .map(|v| read(&text(v)).unwrap_or_else(|e| panic!("{v:?}: {e}")))
        .collect();
    assert_eq!(allowed, [Detail::Each, Detail::Total]);
    let refused = read("pixel").expect_err("only each or total");
    assert!(
        refused
            .to_string()
            .contains("METRIC_DETAIL must be each or total"),
        "{refused}"
    );
}

#[test]
fn every_log_level_a_deploy_may_choose_keeps_other_crates_from_debug() {
    let t = template();
    let level = &t["Parameters"]["FunctionLogLevel"];
    assert_eq!(
        text(&t["Globals"]["Function"]["Environment"]["Variables"]["RUST_LOG"]),
        "FunctionLogLevel"
    );
    for function in FUNCTIONS {
        assert_eq!(
            environment(&t, function)["RUST_LOG"],
            text(&level["Default"]),
            "{function} sets a RUST_LOG of its own"
        );
    }
    let allowed: Vec<String> = list(&level["AllowedValues"]).iter().map(text).collect();
    assert!(allowed.contains(&"warn".to_owned()), "{allowed:?}");
    for value in &allowed {
        tracing_subscriber::EnvFilter::try_new(value)
            .unwrap_or_else(|e| panic!("{value:?} is no RUST_LOG: {e}"));
        // The HTTP and AWS SDK crates print requests' headers (tokens) at DEBUG:
        // only our own detail may go below INFO.
        for directive in value.split(',') {
            let allowed_directive = matches!(directive, "info" | "warn" | "error")
                || directive.strip_suffix("=debug") == Some("ghl_capi::detail");
            assert!(allowed_directive, "{value:?}: {directive}");
        }
    }
}

/// The role a function runs with (`Role: !GetAtt <Role>.Arn`).
fn role(template: &Yaml, function: &str) -> String {
    text(&template["Resources"][function]["Properties"]["Role"])
        .trim_end_matches(".Arn")
        .to_owned()
}

/// The statements of a function's role, flattened (`!If` takes its first branch).
pub(crate) fn statements(template: &Yaml, function: &str) -> Vec<Yaml> {
    let role = role(template, function);
    list(&template["Resources"][role.as_str()]["Properties"]["Policies"])
        .iter()
        .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
        .map(|s| match s {
            Yaml::Array(branches) if branches.len() == 3 => branches[1].clone(),
            s => s,
        })
        .collect()
}

fn allows(template: &Yaml, function: &str, action: &str, resource: &str) -> bool {
    statements(template, function).iter().any(|s| {
        list(&s["Action"])
            .iter()
            .any(|a| a.as_str() == Some(action))
            && list(&s["Resource"]).iter().any(|r| text(r) == resource)
    })
}

#[test]
fn every_queue_a_function_sends_to_is_one_its_policy_allows() {
    let t = template();
    // What each handler does to which queue (aws/src/lambda), by the variable
    // naming the queue: sends, and delays a held record (visibility).
    let (send, delay) = ("sqs:SendMessage", "sqs:ChangeMessageVisibility");
    let uses = [
        ("IntakeFunction", send, "ENRICH_QUEUE_URL"),
        // Installs announce the locations they connect, for their baselines.
        ("IntakeFunction", send, "CONNECT_QUEUE_URL"),
        ("EnrichmentFunction", send, "DISPATCH_QUEUE_URL"),
        ("EnrichmentFunction", send, "DEAD_LETTER_QUEUE_URL"),
        ("EnrichmentFunction", delay, "ENRICH_QUEUE_URL"),
        ("DispatchFunction", send, "DEAD_LETTER_QUEUE_URL"),
        // Held events go back on their own queue, delayed.
        ("DispatchFunction", send, "DISPATCH_QUEUE_URL"),
        ("DispatchFunction", delay, "DISPATCH_QUEUE_URL"),
        // Reconciliation queues the changes it finds for enrichment.
        ("ReconcileFunction", send, "ENRICH_QUEUE_URL"),
        // ...and parks an announcement whose seed never finished.
        ("ReconcileFunction", send, "CONNECT_DEAD_LETTER_QUEUE_URL"),
    ];
    for (function, action, var) in uses {
        let vars_in_template = &t["Resources"][function]["Properties"]["Environment"]["Variables"];
        let queue = text(&vars_in_template[var]);
        assert!(
            allows(&t, function, action, &format!("{queue}.Arn")),
            "{function} uses {action} on {queue} ({var}) but may not"
        );
    }
    // Both consumers keep held work's history and breakers in the state table.
    for function in ["EnrichmentFunction", "DispatchFunction"] {
        for action in [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
        ] {
            assert!(
                allows(&t, function, action, "StateTable.Arn"),
                "{function}: {action}"
            );
        }
    }
    // Dispatch marks the events Meta took, many at once.
    for action in ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"] {
        assert!(
            allows(&t, "DispatchFunction", action, "StateTable.Arn"),
            "{action}"
        );
    }
}

#[test]
fn no_queue_limit_cuts_a_held_message_short_and_every_aws_call_ends_inside_its_function() {
    let t = template();
    let hold = ghl_capi::hold::HoldPolicy::default();
    let longest = hold.outage_limit.max(hold.token_limit).as_secs() as i64;
    for queue in ["EnrichQueue", "DispatchQueue"] {
        let p = &t["Resources"][queue]["Properties"];
        let receives = p["RedrivePolicy"]["maxReceiveCount"]
            .as_i64()
            .expect("limit");
        assert!(
            receives >= i64::from(hold.receives_needed()),
            "{queue}: {receives} receives cut a hold of {longest} s short"
        );
        let retention = p["MessageRetentionPeriod"].as_i64().expect("retention");
        assert!(
            retention > longest,
            "{queue}: kept {retention} s, held up to {longest} s"
        );
    }
    // Throttled polls of the connect queue (while a run holds the reconciliation's
    // one slot) count receives: the function counts its own seeds instead.
    let connect = t["Resources"]["ConnectQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        .as_i64()
        .expect("limit");
    assert!(
        connect >= 100,
        "{connect} receives dead-letter throttled announcements"
    );
    // The enrichment function letters a job (with its cause) before SQS moves it.
    let limit = t["Resources"]["EnrichQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        .as_i64()
        .expect("limit");
    let env = environment(&t, "EnrichmentFunction");
    assert_eq!(env["MAX_RECEIVES"], limit.to_string());
    for function in FUNCTIONS {
        let timeout = t["Resources"][function]["Properties"]["Timeout"]
            .as_i64()
            .expect("timeout set");
        assert!(
            2 * ghl_capi_aws::config::AWS_OPERATION_TIMEOUT.as_secs() as i64 <= timeout,
            "{function}: an AWS call may take most of its {timeout} s"
        );
    }
}

#[test]
fn ghls_deliveries_have_a_throttle_of_their_own_well_above_the_other_routes() {
    let t = template();
    let route = &t["Resources"]["IntakeFunction"]["Properties"]["Events"]["Webhook"]["Properties"];
    assert_eq!(route["Path"].as_str(), Some("/webhooks/ghl"));
    let settings = &route["RouteSettings"];
    assert_eq!(text(&settings["ThrottlingRateLimit"]), "WebhookRateLimit");
    assert_eq!(text(&settings["ThrottlingBurstLimit"]), "WebhookBurstLimit");
    let default = |name: &str| {
        t["Parameters"][name]["Default"]
            .as_i64()
            .expect("a default")
    };
    assert!(default("WebhookRateLimit") >= 5 * default("ApiRateLimit"));
    assert!(default("WebhookBurstLimit") >= 5 * default("ApiBurstLimit"));
}

#[test]
fn every_queue_takes_the_largest_message_the_functions_write() {
    let t = template();
    let Yaml::Hash(resources) = &t["Resources"] else {
        panic!("resources")
    };
    let queues: Vec<(&str, &Yaml)> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::SQS::Queue"))
        .filter_map(|(name, r)| Some((name.as_str()?, &r["Properties"])))
        .collect();
    assert!(queues.len() >= 6, "{}", queues.len());
    for (name, p) in queues {
        assert_eq!(
            p["MaximumMessageSize"].as_i64(),
            Some(ghl_capi::jobs::MAX_MESSAGE_BYTES as i64),
            "{name}: a job the intake accepts, and its letter, must fit"
        );
    }
}

#[test]
fn every_sqs_trigger_reports_item_failures_and_hides_messages_long_enough() {
    let t = template();
    let mut triggers = 0;
    for function in FUNCTIONS {
        let Yaml::Hash(events) = &t["Resources"][function]["Properties"]["Events"] else {
            continue;
        };
        for event in events
            .values()
            .filter(|e| e["Type"].as_str() == Some("SQS"))
        {
            triggers += 1;
            let p = &event["Properties"];
            assert!(
                list(&p["FunctionResponseTypes"])
                    .iter()
                    .any(|r| r.as_str() == Some("ReportBatchItemFailures")),
                "{function}: an SQS trigger without ReportBatchItemFailures"
            );
            let queue = text(&p["Queue"]).trim_end_matches(".Arn").to_owned();
            let visibility = t["Resources"][queue.as_str()]["Properties"]["VisibilityTimeout"]
                .as_i64()
                .expect("visibility timeout set");
            let timeout = t["Resources"][function]["Properties"]["Timeout"]
                .as_i64()
                .expect("timeout set");
            assert!(
                visibility >= 6 * timeout,
                "{queue}: visibility {visibility} s is under 6 × {function}'s {timeout} s"
            );
            assert!(
                !t["Resources"][queue.as_str()]["Properties"]["RedrivePolicy"].is_badvalue(),
                "{queue} has no dead-letter queue"
            );
            // Lambda's poller reads the queue with the function's role.
            for action in [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
            ] {
                assert!(
                    allows(&t, function, action, &format!("{queue}.Arn")),
                    "{function} cannot poll {queue}: {action}"
                );
            }
        }
    }
    assert_eq!(
        triggers, 3,
        "enrichment, dispatch, and the installs' seeding"
    );
    // Enrichment delays rate-limited retries on its own source queue.
    let source = text(
        &t["Resources"]["EnrichmentFunction"]["Properties"]["Events"]["Jobs"]["Properties"]["Queue"],
    );
    let named = text(
        &t["Resources"]["EnrichmentFunction"]["Properties"]["Environment"]["Variables"]["ENRICH_QUEUE_URL"],
    );
    assert_eq!(source, format!("{named}.Arn"));
}

#[test]
fn functions_log_json_build_from_this_workspace_and_grant_no_blanket_resources() {
    let t = template();
    for function in FUNCTIONS {
        let f = &t["Resources"][function];
        // SAM's own policies would bring its managed ones (SQS rights on every
        // queue): each function runs with a role written out instead.
        assert!(
            f["Properties"]["Policies"].is_badvalue(),
            "{function}: SAM Policies"
        );
        let role = &t["Resources"][role(&t, function).as_str()];
        assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"), "{function}");
        assert!(
            role["Properties"]["ManagedPolicyArns"].is_badvalue(),
            "{function}: a managed policy"
        );
        assert_eq!(
            f["Properties"]["LoggingConfig"]["LogFormat"].as_str(),
            Some("JSON"),
            "{function}"
        );
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{function}"
        );
        let binary = text(&f["Metadata"]["BuildProperties"]["Binary"]);
        let manifest = format!(
            "{}/../functions/{binary}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(
            std::path::Path::new(&manifest).exists(),
            "{function}: no package {binary}"
        );
        for statement in statements(&t, function) {
            let blanket = list(&statement["Resource"])
                .iter()
                .any(|r| r.as_str() == Some("*"));
            let actions: Vec<String> = list(&statement["Action"]).iter().map(text).collect();
            // What AWS takes on "*" only: listing secrets' names, writing traces.
            let forced = [
                &["secretsmanager:ListSecrets"][..],
                &["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            ];
            assert!(
                !blanket
                    || forced.contains(
                        &actions
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .as_slice()
                    ),
                "{function}: {actions:?} granted on every resource"
            );
        }
    }
}

/// The `ghl-capi` metric names in one row of a dashboard widget (`[namespace, name,
/// …]`, `[".", name]` for the namespace above, `["...", …]` for the metric above) or
/// in its search expression (`MetricName="…"`).
fn metric_names(row: &serde_json::Value, namespace: &mut String) -> Vec<String> {
    match row[0].as_str() {
        Some("...") => vec![],
        Some(first) => {
            if first != "." {
                *namespace = first.to_owned();
            }
            match row[1].as_str() {
                Some(name) if namespace == "ghl-capi" => vec![name.to_owned()],
                _ => vec![],
            }
        }
        None => row[0]["expression"]
            .as_str()
            .unwrap_or_default()
            .split("MetricName=\"")
            .skip(1)
            .filter_map(|rest| Some(rest.split_once('"')?.0.to_owned()))
            .collect(),
    }
}

#[test]
fn the_dashboard_and_alarms_read_only_metrics_the_functions_write() {
    let t = template();
    let written = ghl_capi::telemetry::NAMES;
    let mut read = BTreeSet::new();
    for (_, resource) in t["Resources"].as_hash().expect("resources") {
        let properties = &resource["Properties"];
        if resource["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        if properties["Namespace"].as_str() == Some("ghl-capi") {
            read.insert(text(&properties["MetricName"]));
        }
        // A metric-math alarm: the metrics its expression reads.
        for metric in list(&properties["Metrics"]) {
            let stat = &metric["MetricStat"]["Metric"];
            if stat["Namespace"].as_str() == Some("ghl-capi") {
                read.insert(text(&stat["MetricName"]));
            }
        }
    }
    // `!Sub [body, names]`: the body, with every `${…}` made a plain word.
    let body = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"][0]
        .as_str()
        .expect("dashboard body");
    let mut plain = String::new();
    let mut rest = body;
    while let Some((before, after)) = rest.split_once("${") {
        plain.push_str(before);
        plain.push('x');
        rest = after.split_once('}').expect("closed ${…}").1;
    }
    plain.push_str(rest);
    let dashboard: serde_json::Value = serde_json::from_str(&plain).expect("dashboard JSON");
    for widget in dashboard["widgets"].as_array().expect("widgets") {
        let mut namespace = String::new();
        for row in widget["properties"]["metrics"].as_array().expect("metrics") {
            read.extend(metric_names(row, &mut namespace));
        }
    }
    for name in &read {
        assert!(
            written.contains(&name.as_str()),
            "the template reads {name}, which no function writes"
        );
    }
    for shown in [
        "Requests",
        "EventsBuilt",
        "EventsSent",
        "DeadLettered",
        "EndToEndLag",
        "GraphLatency",
        "GraphFailures",
        "GhlLatency",
        "GhlRequests",
        "GhlRateLimitRemaining",
        "GhlUnauthorized",
        "TokenRefreshes",
        "Refused",
        "RetryReasons",
        "PartnerPaused",
        "TagBaselines",
        "Skipped",
        "MissedChanges",
        "ContactsScanned",
        "ReconcileFailures",
    ] {
        assert!(read.contains(shown), "the template never reads {shown}");
    }
}

#[test]
fn every_metric_math_alarm_reads_only_metrics_it_defines_and_uses_each() {
    let t = template();
    let mut checked = 0;
    for (name, resource) in t["Resources"].as_hash().expect("resources") {
        if resource["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let metrics = list(&resource["Properties"]["Metrics"]);
        let ids: BTreeSet<String> = metrics.iter().map(|m| text(&m["Id"])).collect();
        let mut used = BTreeSet::new();
        for expression in metrics.iter().filter_map(|m| m["Expression"].as_str()) {
            // Metric math's functions are upper case; the metrics' ids lower.
            let words = expression.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for word in words.filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase())) {
                assert!(
                    ids.contains(word),
                    "{name:?} reads {word}, which it never defines"
                );
                used.insert(word.to_owned());
            }
        }
        for metric in metrics
            .iter()
            .filter(|m| m["ReturnData"].as_bool() == Some(false))
        {
            let id = text(&metric["Id"]);
            assert!(
                used.contains(&id),
                "{name:?} defines {id} and never reads it"
            );
        }
        checked += usize::from(!metrics.is_empty());
    }
    assert!(checked >= 2, "metric-math alarms checked: {checked}");
    // The intake's share counts every answer: its own refusals, and what Lambda
    // tells of the intake (each invocation, failure and throttle).
    let share = list(&t["Resources"]["IntakeRefusedShareAlarm"]["Properties"]["Metrics"]);
    let of_intake: BTreeSet<String> = share
        .iter()
        .map(|m| &m["MetricStat"]["Metric"])
        .filter(|m| m["Namespace"].as_str() == Some("AWS/Lambda"))
        .inspect(|m| assert_eq!(text(&m["Dimensions"][0]["Value"]), "IntakeFunction"))
        .map(|m| text(&m["MetricName"]))
        .collect();
    assert_eq!(
        of_intake,
        BTreeSet::from(["Errors", "Invocations", "Throttles"].map(String::from))
    );
}

#[test]
fn every_alarm_has_its_meaning_and_first_check_in_the_operators_chapter() {
    let t = template();
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operating.md");
    let page = std::fs::read_to_string(page).expect("docs/operating.md");
    // The alarms' table: a row per alarm (or per group of alike ones).
    let rows: Vec<&str> = page.lines().filter(|l| l.starts_with("| `")).collect();
    let mut alarms = Vec::new();
    for (name, resource) in t["Resources"].as_hash().expect("resources") {
        if resource["Type"].as_str() == Some("AWS::CloudWatch::Alarm") {
            alarms.push(name.as_str().expect("a name").to_owned());
        }
    }
    assert!(alarms.len() > 10, "{alarms:?}");
    let unexplained: Vec<&String> = alarms
        .iter()
        .filter(|a| !rows.iter().any(|row| row.contains(&format!("`{a}`"))))
        .collect();
    assert!(
        unexplained.is_empty(),
        "alarms without a row in docs/operating.md: {unexplained:?}"
    );
}

#[test]
fn every_metric_has_a_row_in_the_operators_chapter() {
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operating.md");
    let page = std::fs::read_to_string(page).expect("docs/operating.md");
    let table = page
        .split_once("| Metric | Dimension | What it counts |")
        .and_then(|(_, rest)| rest.split("\n\n").next())
        .expect("the metrics' table");
    let missing: Vec<&str> = (ghl_capi::telemetry::NAMES.iter().copied())
        .filter(|name| !table.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics without a row in docs/operating.md: {missing:?}"
    );
}

#[test]
fn a_workflow_key_in_the_url_has_a_route_and_never_reaches_the_access_log() {
    let t = template();
    let events = &t["Resources"]["IntakeFunction"]["Properties"]["Events"];
    let paths: Vec<String> = events
        .as_hash()
        .expect("events")
        .values()
        .map(|e| text(&e["Properties"]["Path"]))
        .collect();
    for path in ["/workflows/ghl", "/workflows/ghl/{key}"] {
        assert!(paths.iter().any(|p| p == path), "{path} in {paths:?}");
    }
    let format = text(&t["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]);
    assert!(format.contains("$context.routeKey"), "{format}");
    for leaky in ["$context.path", "$context.requestPath", "$context.rawPath"] {
        assert!(
            !format.contains(leaky),
            "the access log writes {leaky}: {format}"
        );
    }
}
