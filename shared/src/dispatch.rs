//! Delivering events to Meta: batches of up to [`MAX_BATCH`] per request, and when
//! Meta refuses a whole request for one invalid event, halving it until the offender
//! stands alone, so the others are still sent and only it is dead-lettered.

use std::future::Future;

use crate::capi::graph::{Disposition, classify};
use crate::capi::{EventRequest, MAX_BATCH, ServerEvent};

/// The Conversions API endpoint, as a port (reqwest on AWS and locally, a fake in tests).
pub trait EventsApi: Send + Sync {
    /// Posts one request for one pixel (dataset); the answer's status and body, or a
    /// transport failure (timeout, connection) as text.
    fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> impl Future<Output = Result<(u16, String), String>> + Send;
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Meta acknowledged it, in the request it traces as `fbtrace_id`.
    Delivered { fbtrace_id: Option<String> },
    /// Send again later (SQS redelivers it; its redrive policy bounds the tries).
    Retry { reason: String },
    /// Hold and alert: the token or its permissions are wrong.
    TokenProblem { reason: String },
    /// Meta will never take it: dead-letter with the reason.
    DeadLetter { reason: String },
}

/// Sends `events` to one pixel and says, for each (by position), what became of it.
pub async fn deliver(
    api: &impl EventsApi,
    dataset_id: &str,
    test_event_code: Option<&str>,
    events: &[ServerEvent],
) -> Vec<Delivery> {
    // Every slot is decided below; this only fills the vector.
    let mut outcomes = vec![Delivery::Delivered { fbtrace_id: None }; events.len()];
    // Ranges still to send; a refused range comes back as its two halves.
    let mut pending: Vec<std::ops::Range<usize>> = (0..events.len())
        .step_by(MAX_BATCH)
        .map(|start| start..(start + MAX_BATCH).min(events.len()))
        .rev()
        .collect();
    while let Some(range) = pending.pop() {
        let request = EventRequest {
            data: events[range.clone()].to_vec(),
            test_event_code: test_event_code.map(str::to_owned),
            ..EventRequest::default()
        };
        let disposition = match api.post(dataset_id, &request).await {
            Ok((status, body)) => classify(status, &body),
            Err(transport) => Disposition::Retry { reason: transport },
        };
        let all = |outcome: Delivery| vec![outcome; range.len()];
        let decided = match disposition {
            Disposition::Delivered {
                events_received,
                fbtrace_id,
            } if events_received as usize == range.len() => all(Delivery::Delivered { fbtrace_id }),
            // Fewer than sent: no way to tell which, so all go again; their event
            // ids make the repeat harmless at Meta.
            Disposition::Delivered {
                events_received, ..
            } => all(Delivery::Retry {
                reason: format!("Meta received {events_received} of {} events", range.len()),
            }),
            Disposition::Invalid { reason } if range.len() == 1 => {
                all(Delivery::DeadLetter { reason })
            }
            Disposition::Invalid { .. } => {
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
                continue;
            }
            Disposition::Retry { reason } => all(Delivery::Retry { reason }),
            Disposition::TokenProblem { reason } => all(Delivery::TokenProblem { reason }),
            Disposition::Refused { reason } => all(Delivery::DeadLetter { reason }),
        };
        for (slot, outcome) in outcomes[range].iter_mut().zip(decided) {
            *slot = outcome;
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A fake Meta: refuses any request that holds an event named `Bad`, the way
    /// Meta refuses a whole batch for one invalid event, and records request sizes.
    #[derive(Default)]
    struct FakeMeta {
        sizes: Mutex<Vec<usize>>,
        answer: Option<(u16, &'static str)>,
    }

    impl EventsApi for FakeMeta {
        async fn post(
            &self,
            dataset_id: &str,
            request: &EventRequest,
        ) -> Result<(u16, String), String> {
            assert_eq!(dataset_id, "123");
            self.sizes.lock().expect("lock").push(request.data.len());
            if let Some((status, body)) = self.answer {
                return Ok((status, body.to_owned()));
            }
            if request.data.iter().any(|e| e.event_name == "Bad") {
                return Ok((400, r#"{"error":{"code":100,"error_subcode":2804009,"message":"Invalid parameter","error_user_msg":"Purchase needs a value"}}"#.into()));
            }
            Ok((
                200,
                format!(r#"{{"events_received":{}}}"#, request.data.len()),
            ))
        }
    }

    fn events(n: usize, bad: &[usize]) -> Vec<ServerEvent> {
        (0..n)
            .map(|i| ServerEvent {
                event_name: if bad.contains(&i) { "Bad" } else { "Lead" }.into(),
                event_time: i as i64,
                ..ServerEvent::default()
            })
            .collect()
    }

    #[tokio::test]
    async fn requests_hold_at_most_a_thousand_events() {
        let meta = FakeMeta::default();
        let outcomes = deliver(&meta, "123", None, &events(2500, &[])).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Delivery::Delivered { .. }))
        );
        assert_eq!(*meta.sizes.lock().expect("lock"), [1000, 1000, 500]);
    }

    #[tokio::test]
    async fn one_invalid_event_is_isolated_and_the_rest_are_sent() {
        let meta = FakeMeta::default();
        let outcomes = deliver(&meta, "123", None, &events(1000, &[617])).await;
        for (i, outcome) in outcomes.iter().enumerate() {
            match i {
                617 => assert!(
                    matches!(outcome, Delivery::DeadLetter { reason } if reason.contains("2804009") && reason.contains("Purchase needs a value"))
                ),
                _ => assert!(matches!(outcome, Delivery::Delivered { .. }), "event {i}"),
            }
        }
        // Halving finds one offender in about 2·log2(1000) requests, not 1,000.
        assert!(meta.sizes.lock().expect("lock").len() <= 22);
    }

    #[tokio::test]
    async fn several_offenders_are_all_found() {
        let meta = FakeMeta::default();
        let outcomes = deliver(&meta, "123", None, &events(40, &[0, 13, 39])).await;
        let dead: Vec<usize> = (0..40)
            .filter(|i| matches!(outcomes[*i], Delivery::DeadLetter { .. }))
            .collect();
        assert_eq!(dead, [0, 13, 39]);
    }

    #[tokio::test]
    async fn token_errors_hold_every_event_and_transients_retry_them() {
        let token = FakeMeta {
            answer: Some((
                400,
                r#"{"error":{"code":190,"error_subcode":463,"message":"expired"}}"#,
            )),
            ..FakeMeta::default()
        };
        assert!(
            deliver(&token, "123", None, &events(3, &[]))
                .await
                .iter()
                .all(|o| matches!(o, Delivery::TokenProblem { .. }))
        );
        let busy = FakeMeta {
            answer: Some((503, "<html>")),
            ..FakeMeta::default()
        };
        assert!(
            deliver(&busy, "123", None, &events(3, &[]))
                .await
                .iter()
                .all(|o| matches!(o, Delivery::Retry { .. }))
        );
        let short = FakeMeta {
            answer: Some((200, r#"{"events_received":2}"#)),
            ..FakeMeta::default()
        };
        assert!(
            deliver(&short, "123", None, &events(3, &[]))
                .await
                .iter()
                .all(|o| matches!(o, Delivery::Retry { .. }))
        );
    }
}
