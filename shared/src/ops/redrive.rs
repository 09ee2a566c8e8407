//! Reading and replaying dead letters. A dead-letter queue holds two kinds of
//! message: the reasoned letters the consumers write (`{"deadLetter": …, "message":
//! …}`), and raw jobs the queue itself moved there after too many receives. Either
//! way the original job is recovered, with the queue it belongs on.

use serde::Serialize;

use crate::jobs::{EnrichJob, LetterMessage, Stage};
use crate::ports::queue::Outgoing;

/// A dead letter as shown to a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Letter {
    /// Stable reason code; `max_receives` for a job the queue gave up on.
    pub code: String,
    pub reason: String,
    pub source: Option<String>,
    pub rule: Option<String>,
    /// Where a redrive sends it; `None` when the message is no job of ours.
    pub stage: Option<Stage>,
    /// The original job, as queued.
    pub message: String,
}

/// Reads one dead-letter queue message.
pub fn read(body: &str) -> Letter {
    match serde_json::from_str::<LetterMessage>(body) {
        Ok(LetterMessage {
            dead_letter: letter,
            message,
        }) => Letter {
            code: letter.code,
            reason: letter.reason,
            source: Some(letter.source),
            rule: letter.rule,
            stage: Stage::of(&message),
            message,
        },
        Err(_) => Letter {
            code: "max_receives".into(),
            reason: "received too many times without success".into(),
            source: None,
            rule: None,
            stage: Stage::of(body),
            message: body.to_owned(),
        },
    }
}

/// The message that puts `letter`'s job back on its queue: in its contact's FIFO
/// group, under a new deduplication id (the old one may still be remembered).
pub fn replay(letter: &Letter, attempt: &str) -> Option<(Stage, Outgoing)> {
    let stage = letter.stage?;
    let (group_id, dedup_id) = match stage {
        Stage::Dispatch => (None, None),
        Stage::Enrich => {
            let job = serde_json::from_str::<EnrichJob>(&letter.message).ok()?;
            let dedup = format!("{}#redrive-{attempt}", job.key());
            (Some(job.group_id()), Some(dedup))
        }
    };
    Some((
        stage,
        Outgoing {
            body: letter.message.clone(),
            group_id,
            dedup_id,
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
        let letter = read(&body);
        assert_eq!(
            (letter.code.as_str(), letter.stage),
            ("contact_not_found", Some(Stage::Enrich))
        );
        let (stage, message) = replay(&letter, "1").expect("replayable");
        assert_eq!(stage, Stage::Enrich);
        assert_eq!(message.body, webhook_job());
        assert_eq!(message.group_id.as_deref(), Some("loc:c1"));
        assert_eq!(message.dedup_id.as_deref(), Some("wh-1#redrive-1"));
    }

    #[test]
    fn a_raw_job_the_queue_gave_up_on_is_read_as_such() {
        let job = json!({"pixel": "main", "source": "wh-1", "rule": "lead",
            "event": {"event_name": "Lead", "event_time": 1, "action_source": "system_generated", "user_data": {}}})
        .to_string();
        let letter = read(&job);
        assert_eq!(
            (letter.code.as_str(), letter.stage),
            ("max_receives", Some(Stage::Dispatch))
        );
        let (_, message) = replay(&letter, "1").expect("replayable");
        assert_eq!((message.group_id, message.dedup_id), (None, None));
        let junk = read("not a job");
        assert_eq!(junk.stage, None);
        assert!(replay(&junk, "1").is_none(), "nothing to send it to");
    }
}
