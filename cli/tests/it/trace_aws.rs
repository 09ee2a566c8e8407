//! `ghl-capi trace --aws`: the journey read from the functions' CloudWatch logs
//! through Logs Insights, on moto. moto runs a query's `fields`, `sort` and
//! `limit` but not its `filter`: every line comes back, so what is shown is the
//! CLI's own selection of the lines the query asked for.

use std::process::{Command, Output};

use ghl_capi_tests::moto::{at_moto, sdk_config};
use serde_json::json;

/// `ghl-capi trace --aws` with `args`, on moto.
fn trace(args: &[&str]) -> Output {
    at_moto(
        Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .args(["trace", "--aws"])
            .args(args),
    )
    .output()
    .expect("trace runs")
}

/// A line as the functions write it (JSON, their fields under `fields`).
fn line(fields: serde_json::Value) -> String {
    json!({"level": "INFO", "fields": fields}).to_string()
}

#[tokio::test]
async fn a_contact_is_traced_through_the_functions_logs() {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
    let group = format!("/aws/lambda/trace-{}", std::process::id());
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("group");
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("s1")
        .send()
        .await
        .expect("stream");
    let now = chrono::Utc::now().timestamp_millis();
    let lines = [
        line(
            json!({"message": "request", "path": "/webhooks/ghl", "status": 200,
            "outcome": "accepted", "webhook_id": "wa"}),
        ),
        line(
            json!({"message": "event built", "webhook_id": "wa", "contact_id": "c-ann",
            "location_id": "loc1", "event_id": "ea", "rule": "buyer", "identifiers": "em ph"}),
        ),
        line(
            json!({"message": "event sent", "source": "wa", "event_id": "ea",
            "fbtrace_id": "TR1", "events_received": 40}),
        ),
        // Another contact's webhook: not shown.
        line(
            json!({"message": "event built", "webhook_id": "wb", "contact_id": "c-bob",
            "event_id": "eb"}),
        ),
        "START RequestId: 1 Version: $LATEST".to_owned(),
    ];
    let events: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, message)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now - 60_000 + i as i64 * 100)
                .message(message)
                .build()
                .expect("event")
        })
        .collect();
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name("s1")
        .set_log_events(Some(events))
        .send()
        .await
        .expect("put");

    let output = trace(&["--contact", "c-ann", "--since", "1h", "--log-group", &group]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.starts_with("contact c-ann since"), "{said}");
    let shown: Vec<&str> = said.lines().skip(1).collect();
    assert_eq!(
        shown.len(),
        3,
        "its webhook's three lines, once each: {said}"
    );
    assert!(
        shown[0].contains("  request  ") && shown[0].contains("webhook_id=wa"),
        "{said}"
    );
    assert!(
        shown[2].contains("fbtrace_id=TR1") && shown[2].contains("events_received=40"),
        "{said}"
    );
    assert!(!said.contains("c-bob"), "{said}");

    // A log group the account does not have: a clear error, not an empty trace.
    let missing = trace(&["--webhook", "wa", "--log-group", "/aws/lambda/none"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("logs:StartQuery"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
