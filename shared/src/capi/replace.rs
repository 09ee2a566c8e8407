//! Meta's `usersreplace` (`reference/meta-capi.md` §10.2): a customer-file
//! audience's whole list replaced, in one session, without resetting its ad sets'
//! learning phase (adds and removes on `/users` do). The body of
//! `POST /{version}/{audience_id}/usersreplace`, what each answer means for the
//! batch sent, and a session's status as `GET /{audience_id}/sessions` lists it.
//!
//! Meta's rules: `batch_seq` starts at 1 and a 1 starts a new replace (so a batch 1
//! is never sent again in a session); one replace at a time; no `/users` call for
//! the audience while one runs; the session ends 90 minutes after its first batch,
//! or at the batch flagged last; the schema never changes within it.

use serde::{Deserialize, Serialize};

use super::answer::{Bare, Failure, without_error};
use super::audience::Row;
use super::payload::Payload;

/// Meta's error code of every replace refusal, told apart by subcode.
const REPLACE_ERROR: i64 = 2650;
/// An update of the audience is in progress: wait.
const IN_PROGRESS: i64 = 1_870_145;
/// Something went wrong: send again.
const WENT_WRONG: i64 = 1_870_148;
/// The session timed out: the audience holds what arrived.
const TIMED_OUT: i64 = 1_870_158;
/// The session's first `batch_seq` was not 1.
const FIRST_NOT_ONE: i64 = 1_870_147;
/// The session had finished already.
const ALREADY_FINISHED: i64 = 1_870_159;
/// The audience holds 100 million or more.
const TOO_LARGE: i64 = 1_870_144;

/// A replace session's fields, on every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceSession {
    /// Unique per ad account, an int64.
    pub session_id: u64,
    /// 1 for the first batch (and only for it), then any other number.
    pub batch_seq: u32,
    pub last_batch_flag: bool,
    pub estimated_num_total: u64,
}

/// One batch of a replace (credentials are added by the client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceRequest {
    pub session: ReplaceSession,
    pub rows: Vec<Row>,
}

impl ReplaceRequest {
    pub fn payload(&self) -> Payload<'_> {
        Payload(&self.rows)
    }
}

/// What Meta's answer to one batch means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceOutcome {
    /// Meta took the batch: `received` rows, `invalid` of them unusable.
    Taken { received: u64, invalid: u64 },
    /// Another update of the audience is under way, or Meta throttles: send this
    /// batch again later.
    Wait { reason: String },
    /// Something went wrong at Meta (or no answer worth reading): send this batch
    /// again.
    Retry { reason: String },
    /// The session ended before it finished (it timed out: the audience holds what
    /// arrived; or Meta saw no first batch): start a new replace.
    Restart { reason: String },
    /// The session had finished already: a last batch sent again after its answer
    /// was lost.
    Finished { reason: String },
    /// The token or its permission: a person must fix it.
    Held { reason: String },
    /// Never: an audience of 100 million or more, or a replace Meta refuses.
    Refused { reason: String },
}

#[derive(Deserialize)]
struct Taken {
    #[serde(default)]
    num_received: Option<u64>,
    #[serde(default)]
    num_invalid_entries: u64,
}

/// Classifies Meta's answer to a batch of `rows` rows.
pub fn classify_replace(status: u16, body: &str, rows: usize) -> ReplaceOutcome {
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Taken>(body) {
            Ok(Taken {
                num_received: Some(received),
                num_invalid_entries,
            }) if received as usize == rows => ReplaceOutcome::Taken {
                received,
                invalid: num_invalid_entries,
            },
            // Repeats within a session (any batch but 1) are allowed: send again.
            Ok(Taken {
                num_received: Some(received),
                ..
            }) => ReplaceOutcome::Retry {
                reason: format!("Meta received {received} of {rows} rows"),
            },
            _ => ReplaceOutcome::Retry {
                reason: format!("unreadable {status} answer from Meta's replace"),
            },
        };
    }
    let Ok(Failure { error }) = serde_json::from_str::<Failure>(body) else {
        return match without_error(status) {
            Bare::Refused(reason) => ReplaceOutcome::Held { reason },
            Bare::Retry(reason) => ReplaceOutcome::Retry { reason },
        };
    };
    let reason = error.reason();
    match (error.code, error.error_subcode) {
        (REPLACE_ERROR, Some(IN_PROGRESS)) => ReplaceOutcome::Wait { reason },
        (REPLACE_ERROR, Some(TIMED_OUT | FIRST_NOT_ONE)) => ReplaceOutcome::Restart { reason },
        (REPLACE_ERROR, Some(ALREADY_FINISHED)) => ReplaceOutcome::Finished { reason },
        (REPLACE_ERROR, Some(TOO_LARGE)) => ReplaceOutcome::Refused { reason },
        (REPLACE_ERROR, Some(WENT_WRONG)) => ReplaceOutcome::Retry { reason },
        (190 | 102 | 10 | 200..=299, _) => ReplaceOutcome::Held { reason },
        (4 | 17 | 32 | 341 | 613 | 80000..=80099, _) => ReplaceOutcome::Wait { reason },
        _ if error.is_transient || status >= 500 || status == 429 => {
            ReplaceOutcome::Retry { reason }
        }
        _ => ReplaceOutcome::Refused { reason },
    }
}

/// One session as `GET /{audience_id}/sessions` lists it (fields Meta leaves out
/// are `None`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SessionStatus {
    #[serde(default, deserialize_with = "id_text")]
    pub session_id: String,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub num_received: Option<u64>,
    #[serde(default)]
    pub num_matched: Option<u64>,
    #[serde(default)]
    pub num_invalid_entries: Option<u64>,
    #[serde(default)]
    pub end_time: Option<serde_json::Value>,
}

/// A session id as Meta writes it: a number or its text.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

impl SessionStatus {
    /// Whether Meta is done with it: an end time, full progress, or a final stage.
    /// Stage names are not documented beyond their existence: any that reads as
    /// done counts.
    pub fn finished(&self) -> bool {
        let ended = self
            .end_time
            .as_ref()
            .is_some_and(|t| !t.is_null() && *t != serde_json::json!(0) && *t != "");
        let stage = self
            .stage
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        ended
            || self.progress.is_some_and(|p| p >= 100.0)
            || ["finished", "completed", "done", "normal"]
                .iter()
                .any(|s| stage.contains(s))
    }
}

#[derive(Deserialize)]
struct Sessions {
    #[serde(default)]
    data: Vec<SessionStatus>,
}

/// The session `session_id` in Meta's answer to the sessions read, if listed.
pub fn session_of(body: &str, session_id: u64) -> Option<SessionStatus> {
    let Sessions { data } = serde_json::from_str(body).ok()?;
    let id = session_id.to_string();
    data.into_iter().find(|s| s.session_id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(subcode: i64) -> String {
        serde_json::json!({"error": {"message": "replace", "code": 2650,
            "error_subcode": subcode, "fbtrace_id": "Ab"}})
        .to_string()
    }

    #[test]
    fn each_replace_answer_says_what_to_do_with_the_batch() {
        let taken =
            r#"{"account_id":"1","session_id":"9","num_received":2,"num_invalid_entries":1}"#;
        assert_eq!(
            classify_replace(200, taken, 2),
            ReplaceOutcome::Taken {
                received: 2,
                invalid: 1
            }
        );
        assert!(matches!(
            classify_replace(200, taken, 3),
            ReplaceOutcome::Retry { .. }
        ));
        let class = |sub| classify_replace(400, &refused(sub), 1);
        assert!(matches!(class(1_870_145), ReplaceOutcome::Wait { .. }));
        assert!(matches!(class(1_870_148), ReplaceOutcome::Retry { .. }));
        assert!(matches!(class(1_870_158), ReplaceOutcome::Restart { .. }));
        assert!(matches!(class(1_870_147), ReplaceOutcome::Restart { .. }));
        assert!(matches!(class(1_870_159), ReplaceOutcome::Finished { .. }));
        assert!(
            matches!(class(1_870_144), ReplaceOutcome::Refused { reason } if reason.contains("2650/1870144"))
        );
        let token = serde_json::json!({"error": {"code": 190, "message": "expired"}});
        assert!(matches!(
            classify_replace(400, &token.to_string(), 1),
            ReplaceOutcome::Held { .. }
        ));
        assert!(matches!(
            classify_replace(502, "<html>", 1),
            ReplaceOutcome::Retry { .. }
        ));
    }

    #[test]
    fn a_sessions_status_is_read_whatever_meta_calls_its_stages() {
        let body = r#"{"data":[{"session_id":"9","stage":"uploading","progress":40},
            {"session_id":12,"stage":"finished","num_received":3,"num_matched":2,"end_time":1796000000}]}"#;
        let running = session_of(body, 9).expect("listed");
        assert!(!running.finished());
        let done = session_of(body, 12).expect("listed");
        assert!(done.finished());
        assert_eq!((done.num_received, done.num_matched), (Some(3), Some(2)));
        assert!(session_of(body, 13).is_none());
    }
}
