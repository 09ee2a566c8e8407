//! Reading and replaying dead letters. A dead-letter queue holds two kinds of
//! message: the reasoned letters the consumers write (`{"deadLetter": …, "message":
//! …}`), and raw jobs the queue itself moved there after too many receives. Either
//! way the original job is recovered, with the queue it belongs on.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ghl::webhook::Envelope;
use crate::jobs::{DeadLetter, DispatchMessage, EnrichJob, History, LetterMessage, Stage};
use crate::ports::queue::Outgoing;
use crate::ports::text;

/// The code of a job a queue moved to its dead-letter queue after its receive limit.
pub const MAX_RECEIVES: &str = "max_receives";

/// A dead letter as shown to a person: the letter, and the job it is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Letter {
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// Where a redrive sends it; `None` when the message is no job of ours.
    pub redrive_to: Option<Stage>,
    /// The original job, as queued.
    pub message: String,
}

/// What a queue knows of a message it gave up on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GaveUp {
    pub receives: u32,
    pub first_received: Option<DateTime<Utc>>,
    pub last_received: Option<DateTime<Utc>>,
}

/// Reads one dead-letter queue message: a reasoned letter, or a job the queue moved
/// there itself (`gave_up` says what the queue knows of it).
pub fn read(body: &str, gave_up: GaveUp) -> Letter {
    if let Ok(LetterMessage {
        mut dead_letter,
        message,
    }) = serde_json::from_str::<LetterMessage>(body)
    {
        let redrive_to = Stage::of(&message);
        // Letters written before they named their stage: the job's queue says it.
        dead_letter.stage = dead_letter.stage.or(redrive_to);
        return Letter {
            redrive_to,
            letter: dead_letter,
            message,
        };
    }
    let stage = Stage::of(body);
    let (source, triggers, held) = about(body);
    let mut reason = format!(
        "the queue gave up after {} receives: the function never finished it (it stopped \
         while handling it: a crash or a timeout)",
        gave_up.receives
    );
    if let Some(cause) = &held.last_cause {
        reason.push_str(&format!("; before that, held for: {cause}"));
    }
    let mut letter = DeadLetter::new(
        source.as_deref().unwrap_or("-"),
        stage.unwrap_or(Stage::Enrich),
        MAX_RECEIVES,
        reason,
    );
    letter.stage = stage;
    letter.triggers = triggers;
    letter.history = History {
        attempts: held.attempts + gave_up.receives,
        first_failure: held.first_failure.or(gave_up.first_received),
        last_failure: gave_up.last_received.or(held.last_failure),
        ..held
    };
    Letter {
        letter,
        redrive_to: stage,
        message: body.to_owned(),
    }
}

/// A raw job's source (webhook id, or a conversion's event id), triggers and the
/// history it carries, as far as the job itself tells them.
fn about(message: &str) -> (Option<String>, Vec<String>, History) {
    if let Ok(job) = serde_json::from_str::<EnrichJob>(message) {
        let kind = match &job {
            EnrichJob::Webhook { body, .. }
            | EnrichJob::Stale(crate::jobs::StaleWebhook { body, .. }) => {
                Envelope::of(body.as_bytes())
                    .and_then(|(envelope, _)| envelope.kind)
                    .unwrap_or_default()
            }
            EnrichJob::Conversion(_) => "conversion.posted".to_owned(),
            EnrichJob::Workflow(_) => "workflow.fired".to_owned(),
            EnrichJob::Listed(_) => "contact.listed".to_owned(),
            EnrichJob::Opportunity(_) => "opportunity.listed".to_owned(),
            EnrichJob::WriteBack(_) => "write_back".to_owned(),
        };
        return (Some(job.key().to_owned()), vec![kind], History::default());
    }
    match DispatchMessage::parse(message) {
        Ok(DispatchMessage::Event(job)) => (Some(job.source), vec![job.trigger], job.history),
        Ok(DispatchMessage::Audience(job)) => (
            Some(job.source),
            vec![format!("audience:{}", job.audience)],
            job.history,
        ),
        Err(_) => (None, Vec::new(), History::default()),
    }
}

/// The message that puts `letter`'s job back on its queue: in its contact's FIFO
/// group, under a new deduplication id (the old one may still be remembered), its
/// history cleared so the hold starts afresh.
pub fn replay(letter: &Letter, attempt: &str) -> Option<(Stage, Outgoing)> {
    let stage = letter.redrive_to?;
    let (body, group_id, dedup_id) = match stage {
        Stage::Dispatch => {
            let body = match DispatchMessage::parse(&letter.message).ok()? {
                DispatchMessage::Event(mut job) => {
                    job.history = History::default();
                    text(&job)
                }
                DispatchMessage::Audience(mut job) => {
                    job.history = History::default();
                    job.resync = true;
                    text(&job)
                }
            };
            (body, None, None)
        }
        Stage::Enrich => {
            let job = serde_json::from_str::<EnrichJob>(&letter.message).ok()?;
            let (dedup, group) = (format!("{}#redrive-{attempt}", job.key()), job.group_id());
            let body = match job {
                // Kept for a person: redriven, it is handled as the webhook it is.
                EnrichJob::Stale(stale) => text(&stale.into_webhook()),
                _ => letter.message.clone(),
            };
            (body, Some(group), Some(dedup))
        }
    };
    Some((
        stage,
        Outgoing {
            body,
            group_id,
            dedup_id,
            delay: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn webhook_job() -> String {
        json!({"kind": "webhook", "key": "wh-1", "received_at": "2026-11-20T10:00:00Z",
            "body": json!({"type": "ContactCreate", "locationId": "loc", "id": "c1"}).to_string()})
        .to_string()
    }

    #[test]
    fn a_reasoned_letter_is_read_and_replayed_in_its_contacts_group() {
        let body =
            json!({"deadLetter": {"source": "wh-1", "rule": null, "code": "contact_not_found",
            "reason": "GHL has no contact c1"}, "message": webhook_job()})
            .to_string();
        let letter = read(&body, GaveUp::default());
        assert_eq!(
            (letter.letter.code.as_str(), letter.redrive_to),
            ("contact_not_found", Some(Stage::Enrich))
        );
        let (stage, message) = replay(&letter, "1").expect("replayable");
        assert_eq!(stage, Stage::Enrich);
        assert_eq!(message.body, webhook_job());
        assert_eq!(message.group_id.as_deref(), Some("loc:c1"));
        assert_eq!(message.dedup_id.as_deref(), Some("wh-1#redrive-1"));
    }

    #[test]
    fn a_raw_job_the_queue_gave_up_on_names_its_source_triggers_and_receives() {
        let job = json!({"pixel": "main", "source": "wh-1", "rule": "lead", "trigger": "contact.created",
            "event": {"event_name": "Lead", "event_time": 1, "action_source": "system_generated", "user_data": {}},
            "history": {"attempts": 3, "last_code": "meta_unavailable", "last_cause": "Meta answered 503"}})
        .to_string();
        let first: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
        let gave_up = GaveUp {
            receives: 8,
            first_received: Some(first),
            last_received: None,
        };
        let letter = read(&job, gave_up);
        assert_eq!(
            (letter.letter.code.as_str(), letter.redrive_to),
            ("max_receives", Some(Stage::Dispatch))
        );
        assert_eq!(letter.letter.source, "wh-1");
        assert_eq!(letter.letter.triggers, ["contact.created"]);
        assert_eq!(
            letter.letter.history.attempts, 11,
            "3 held, then 8 receives"
        );
        assert_eq!(letter.letter.history.first_failure, Some(first));
        assert!(
            letter.letter.reason.contains("8 receives") && letter.letter.reason.contains("503"),
            "{}",
            letter.letter.reason
        );
        let (_, message) = replay(&letter, "1").expect("replayable");
        assert_eq!((message.group_id, message.dedup_id), (None, None));
        let replayed: crate::jobs::DispatchJob = serde_json::from_str(&message.body).expect("job");
        assert!(
            replayed.history.is_empty(),
            "a redrive starts its hold afresh"
        );
        let webhook = read(&webhook_job(), GaveUp::default());
        assert_eq!(
            (
                webhook.letter.source.as_str(),
                webhook.letter.triggers.as_slice()
            ),
            ("wh-1", &["ContactCreate".to_owned()][..])
        );
        let junk = read("not a job", GaveUp::default());
        assert_eq!(junk.redrive_to, None);
        assert!(replay(&junk, "1").is_none(), "nothing to send it to");
    }
}
