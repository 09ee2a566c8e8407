//! `ghl-capi dlq` on SQS: the real command against a `moto_server` (started by
//! `scripts/test.sh`), reached the way users reach AWS: through `AWS_*` variables.

use std::process::{Command, Output};

use aws_sdk_sqs::Client;
use ghl_capi_tests::moto;
use serde_json::{Value, json};

fn client() -> Client {
    ghl_capi_tests::moto_client!(aws_sdk_sqs)
}

async fn queue(sqs: &Client, name: &str) -> String {
    moto::queue(sqs, name, None).await
}

fn dlq(args: &[&str]) -> Output {
    moto::at_moto(
        Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .arg("dlq")
            .args(args),
    )
    .output()
    .expect("dlq runs")
}

async fn bodies(sqs: &Client, url: &str) -> Vec<(String, Option<String>)> {
    moto::receive(sqs, url)
        .await
        .into_iter()
        .map(|m| {
            let group = m
                .attributes
                .as_ref()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                })
                .cloned();
            (m.body.unwrap_or_default(), group)
        })
        .collect()
}

#[tokio::test]
async fn dead_letters_on_sqs_are_listed_and_redriven_to_their_queues() {
    let sqs = client();
    let id = format!(
        "dlq{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    let dead = queue(&sqs, &format!("{id}-dead")).await;
    let enrich = queue(&sqs, &format!("{id}-enrich.fifo")).await;
    let dispatch = queue(&sqs, &format!("{id}-dispatch")).await;
    let job = json!({"kind": "webhook", "key": "wh-1", "received_at": "2026-11-20T10:00:00Z",
        "body": json!({"type": "ContactCreate", "locationId": "loc", "id": "c1"}).to_string()})
    .to_string();
    let letter = json!({"deadLetter": {"source": "wh-1", "rule": null, "code": "contact_not_found",
        "reason": "GHL has no contact c1"}, "message": job})
    .to_string();
    let raw =
        json!({"pixel": "main", "source": "wh-2", "rule": "lead", "event": {"event_name": "Lead",
        "event_time": 1, "action_source": "system_generated", "user_data": {}}})
        .to_string();
    for body in [&letter, &raw] {
        sqs.send_message()
            .queue_url(&dead)
            .message_body(body)
            .send()
            .await
            .expect("sent");
    }

    let listed = dlq(&["list", "--json", "--queue-url", &dead]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let mut codes: Vec<(String, String)> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON line");
            (
                v["code"].as_str().unwrap_or("").into(),
                v["stage"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            ("contact_not_found".into(), "enrich".into()),
            ("max_receives".into(), "dispatch".into())
        ]
    );

    let redriven = dlq(&[
        "redrive",
        "--queue-url",
        &dead,
        "--enrich-queue-url",
        &enrich,
        "--dispatch-queue-url",
        &dispatch,
    ]);
    assert!(
        redriven.status.success(),
        "{}",
        String::from_utf8_lossy(&redriven.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&redriven.stdout).trim(),
        "redriven: 2; left in place (not a job of ours): 0"
    );
    assert_eq!(
        bodies(&sqs, &enrich).await,
        [(job, Some("loc:c1".to_owned()))]
    );
    // The dispatch job goes back as the same job (its hold's history cleared).
    let redriven: Vec<(Value, Option<String>)> = bodies(&sqs, &dispatch)
        .await
        .into_iter()
        .map(|(body, group)| (serde_json::from_str(&body).expect("a job"), group))
        .collect();
    let raw: Value = serde_json::from_str(&raw).expect("JSON");
    assert_eq!(redriven, [(raw, None)]);
    assert!(bodies(&sqs, &dead).await.is_empty());
}
