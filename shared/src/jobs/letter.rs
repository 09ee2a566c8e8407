//! The dead-letter queues' wire format: a letter ([`DeadLetter`]) and the message
//! it is about ([`LetterMessage`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{History, Stage};

/// Something that will not reach Meta, with why: where it started (`source`, the
/// webhook id or the conversion's event id), the stage and triggers it failed in,
/// and what it went through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub source: String,
    /// Absent only in letters written before stages named themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// The triggers of the job (`contact.created`, `contact.tag_added:vip`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
    pub rule: Option<String>,
    /// The event it was about, for a letter of one event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Stable code (`too_old`, `contact_not_found`, …).
    pub code: String,
    /// The version of the mapping the job was built or judged under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// When it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "History::is_empty")]
    pub history: History,
}

impl DeadLetter {
    /// A letter about `source` in `stage`, with `code` and `reason`.
    pub fn new(source: &str, stage: Stage, code: &str, reason: impl Into<String>) -> Self {
        DeadLetter {
            source: source.to_owned(),
            stage: Some(stage),
            triggers: Vec::new(),
            rule: None,
            event_id: None,
            code: code.to_owned(),
            mapping: None,
            reason: reason.into(),
            at: None,
            history: History::default(),
        }
    }
}

impl DeadLetter {
    /// Names the mapping `version` it was judged under, unless it names one.
    pub fn under(mut self, version: Option<&str>) -> Self {
        if self.mapping.is_none() {
            self.mapping = version.filter(|v| !v.is_empty()).map(str::to_owned);
        }
        self
    }
}

/// The longest reason a letter keeps: with the letter's other fields, well inside
/// [`super::LETTER_ROOM`].
const MAX_REASON_BYTES: usize = 4 << 10;

/// A dead letter as a dead-letter queue holds it: the letter, and the message it is
/// about, as it was queued (so a redrive can put it back). The message is carried
/// as the JSON it is, not escaped into a string (letters of older builds did:
/// they read the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LetterMessage {
    pub dead_letter: DeadLetter,
    #[serde(with = "embedded")]
    pub message: String,
}

/// A message inside a letter: as JSON when it is JSON (every job is), else as a
/// string; read back from either.
mod embedded {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(message: &str, out: S) -> Result<S::Ok, S::Error> {
        match RawValue::from_string(message.to_owned()) {
            Ok(raw) => raw.serialize(out),
            Err(_) => message.serialize(out),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<String, D::Error> {
        let raw = Box::<RawValue>::deserialize(input)?;
        match serde_json::from_str::<String>(raw.get()) {
            Ok(text) => Ok(text),
            Err(_) => Ok(raw.get().to_owned()),
        }
    }
}

impl LetterMessage {
    /// `letter` about `message`, its reason cut to fit [`super::LETTER_ROOM`].
    pub fn new(mut letter: DeadLetter, message: &str) -> Self {
        if letter.reason.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !letter.reason.is_char_boundary(end) {
                end -= 1;
            }
            letter.reason.truncate(end);
            letter.reason.push('…');
        }
        LetterMessage {
            dead_letter: letter,
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_carries_its_job_as_json_and_reads_the_letters_of_older_builds() {
        let job = r#"{"webhook":{"key":"wh-1","received_at":"2026-12-01T10:00:00Z","body":"{\"type\":\"ContactCreate\"}"}}"#;
        let letter = DeadLetter::new("wh-1", Stage::Enrich, "contact_not_found", "gone");
        let text = serde_json::to_string(&LetterMessage::new(letter.clone(), job)).expect("json");
        assert!(
            text.contains(job),
            "embedded as it is, not escaped again: {text}"
        );
        assert!(
            text.len() < job.len() + 300,
            "{} for a {}-byte job",
            text.len(),
            job.len()
        );
        let read: LetterMessage = serde_json::from_str(&text).expect("read");
        assert_eq!(read.message, job);
        // An older build's letter, its job escaped into a string.
        let old = serde_json::json!({"deadLetter": letter, "message": job}).to_string();
        let read: LetterMessage = serde_json::from_str(&old).expect("read");
        assert_eq!(read.message, job);
        // A message that is no JSON stays a string.
        let odd = LetterMessage::new(letter, "not json");
        let read: LetterMessage =
            serde_json::from_str(&serde_json::to_string(&odd).expect("json")).expect("read");
        assert_eq!(read.message, "not json");
    }

    #[test]
    fn a_long_reason_is_cut_to_leave_the_job_room() {
        let reason = "é".repeat(10_000);
        let letter = DeadLetter::new("wh-1", Stage::Enrich, "malformed_webhook", reason);
        let cut = LetterMessage::new(letter, "{}").dead_letter.reason;
        assert!(cut.len() <= 4100 && cut.ends_with('…'), "{}", cut.len());
    }
}
