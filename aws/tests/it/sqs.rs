//! The SQS adapter against a real `moto_server` (started by `scripts/test.sh`, which
//! sets `MOTO_ENDPOINT`), with the real AWS SDK client.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use ghl_capi::ports::queue::{Outgoing, Queue};
use ghl_capi_aws::sqs::SqsQueue;
use ghl_capi_tests::moto::receive;

fn client() -> Client {
    ghl_capi_tests::moto_client!(aws_sdk_sqs)
}

/// A fresh queue per test, so tests can run at once against one moto.
async fn queue(client: &Client, fifo: bool) -> String {
    let name = ghl_capi_tests::unique("t") + if fifo { ".fifo" } else { "" };
    ghl_capi_tests::moto::queue(client, &name, None).await
}

#[tokio::test]
async fn fifo_messages_carry_their_group_and_deduplicate_on_their_id() {
    let client = client();
    let url = queue(&client, true).await;
    let sqs = SqsQueue::new(client.clone(), &url);
    for _ in 0..2 {
        sqs.send(Outgoing {
            body: r#"{"n":1}"#.into(),
            group_id: Some("loc:c1".into()),
            dedup_id: Some("w1".into()),
            delay: None,
        })
        .await
        .expect("sent");
    }
    let messages = receive(&client, &url).await;
    assert_eq!(messages.len(), 1, "the second send of w1 is a duplicate");
    assert_eq!(messages[0].body(), Some(r#"{"n":1}"#));
    let group = messages[0]
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
        .map(String::as_str);
    assert_eq!(group, Some("loc:c1"));
}

#[tokio::test]
async fn standard_queues_take_messages_without_fifo_ids() {
    let client = client();
    let url = queue(&client, false).await;
    let sqs = SqsQueue::new(client.clone(), &url);
    sqs.send(Outgoing {
        body: "a".into(),
        group_id: Some("ignored".into()),
        dedup_id: Some("ignored".into()),
        delay: None,
    })
    .await
    .expect("sent");
    assert_eq!(receive(&client, &url).await.len(), 1);
}

#[tokio::test]
async fn a_delayed_message_on_a_standard_queue_waits_its_delay() {
    let client = client();
    let url = queue(&client, false).await;
    let sqs = SqsQueue::new(client.clone(), &url);
    let mut later = Outgoing::new("later".into());
    later.delay = Some(std::time::Duration::from_millis(1_200));
    sqs.send(later).await.expect("sent");
    assert!(
        receive(&client, &url).await.is_empty(),
        "delayed (2 s, rounded up)"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    assert_eq!(receive(&client, &url).await.len(), 1);
}

#[tokio::test]
async fn a_missing_queue_is_an_error_for_the_caller_to_act_on() {
    let client = client();
    let sqs = SqsQueue::new(
        client.clone(),
        format!(
            "{}/123456789012/no-such-queue",
            std::env::var("MOTO_ENDPOINT").expect("moto")
        ),
    );
    let err = sqs
        .send(Outgoing {
            body: "a".into(),
            group_id: None,
            dedup_id: None,
            delay: None,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("could not queue"), "{err}");
}

#[tokio::test]
async fn received_messages_are_hidden_delayed_and_deleted_by_receipt() {
    let client = client();
    let url = queue(&client, false).await;
    let sqs = SqsQueue::new(client.clone(), &url);
    for body in ["a", "b"] {
        sqs.send(Outgoing {
            body: body.into(),
            group_id: None,
            dedup_id: None,
            delay: None,
        })
        .await
        .expect("sent");
    }
    let mut got = sqs.receive(10, 60).await.expect("received");
    got.sort_by(|x, y| x.body.cmp(&y.body));
    assert_eq!(got.len(), 2);
    assert!(
        sqs.receive(10, 60).await.expect("received").is_empty(),
        "hidden for 60 s"
    );
    // `a` is handed back at once, `b` in two seconds (SQS counts whole seconds).
    sqs.delay(&got[0].receipt, std::time::Duration::ZERO)
        .await
        .expect("delayed");
    sqs.delay(&got[1].receipt, std::time::Duration::from_millis(1_500))
        .await
        .expect("delayed");
    let again = sqs.receive(10, 60).await.expect("received");
    assert_eq!(
        again.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
    sqs.delete(&again[0].receipt).await.expect("deleted");
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let last = sqs.receive(10, 60).await.expect("received");
    assert_eq!(
        last.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
}

#[tokio::test]
async fn a_redrive_policy_moves_a_message_received_too_often_to_its_dead_letter_queue() {
    let client = client();
    let dead = queue(&client, false).await;
    let dead_arn = client
        .get_queue_attributes()
        .queue_url(&dead)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("arn");
    let url = queue(&client, false).await;
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dead_arn}","maxReceiveCount":"2"}}"#),
        )
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
        .send()
        .await
        .expect("redrive policy set");
    let sqs = SqsQueue::new(client.clone(), &url);
    let job = r#"{"pixel":"main","source":"wh-1","rule":"lead","event":{"event_name":"Lead","event_time":1,"action_source":"system_generated","user_data":{}}}"#;
    sqs.send(Outgoing {
        body: job.into(),
        group_id: None,
        dedup_id: None,
        delay: None,
    })
    .await
    .expect("sent");
    for _ in 0..2 {
        assert_eq!(sqs.receive(10, 0).await.expect("received").len(), 1);
    }
    assert!(sqs.receive(10, 0).await.expect("received").is_empty());
    let moved = SqsQueue::new(client.clone(), &dead)
        .receive(10, 30)
        .await
        .expect("received");
    assert_eq!(moved.len(), 1);
    let letter = ghl_capi::ops::redrive::read(&moved[0].body, moved[0].gave_up);
    assert_eq!(
        (letter.letter.code.as_str(), letter.redrive_to),
        ("max_receives", Some(ghl_capi::jobs::Stage::Dispatch)),
        "the raw job is recognised as one the queue gave up on"
    );
    assert_eq!(
        letter.letter.source, "wh-1",
        "with the webhook it came from"
    );
    assert!(letter.letter.history.attempts >= 2, "{letter:?}");
    assert!(letter.letter.history.first_failure.is_some(), "{letter:?}");
}

#[tokio::test]
async fn many_messages_go_in_batches_of_ten_and_arrive_whole() {
    let client = client();
    for fifo in [false, true] {
        let url = queue(&client, fifo).await;
        let sqs = SqsQueue::new(client.clone(), &url);
        // Big enough bodies that size, not count, closes some batches (256 KiB).
        let messages: Vec<Outgoing> = (0..25)
            .map(|i| Outgoing {
                body: format!("{i:02}{}", "x".repeat(if i < 5 { 100_000 } else { 10 })),
                group_id: Some(format!("g{i}")),
                dedup_id: Some(format!("d{i}")),
                delay: None,
            })
            .collect();
        sqs.send_all(messages).await.expect("sent");
        let mut got = Vec::new();
        loop {
            let batch = receive(&client, &url).await;
            if batch.is_empty() {
                break;
            }
            got.extend(
                batch
                    .iter()
                    .map(|m| m.body().unwrap_or_default()[..2].to_owned()),
            );
        }
        got.sort();
        let expected: Vec<String> = (0..25).map(|i| format!("{i:02}")).collect();
        assert_eq!(got, expected, "fifo: {fifo}");
    }
}
