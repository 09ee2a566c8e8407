//! Custom Audiences' vocabulary (`reference/meta-capi.md` §5): the multi-key row
//! schema, the body of `POST`/`DELETE /{version}/{audience_id}/users`, and what
//! Meta's answer means for the rows sent.
//!
//! Where audience rules differ from the Conversions API's: a date of birth goes as
//! three keys (`DOBY`, `DOBM`, `DOBD`), each hashed; `EXTERN_ID` is never hashed by
//! Meta, so it carries the digest the events' `external_id` carries, and both
//! sides see the same string; keys a contact lacks are sent as `""`.

use serde::{Deserialize, Serialize};

use super::answer::{Bare, Failure, MetaError, without_error};

/// The row schema every request uses, in this order.
pub const SCHEMA: [&str; 13] = [
    "EXTERN_ID",
    "EMAIL",
    "PHONE",
    "FN",
    "LN",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "DOBY",
    "DOBM",
    "DOBD",
    "GEN",
];

/// The Limited Data Use columns (`reference/meta-capi.md` §10.2), sent after
/// [`SCHEMA`]'s by an audience that asks for LDU: the options (`["LDU"]`, or `[]`
/// for none), then Meta's country and state codes.
pub const LDU_COLUMNS: [&str; 3] = [
    "DATA_PROCESSING_OPTIONS",
    "DATA_PROCESSING_OPTIONS_COUNTRY",
    "DATA_PROCESSING_OPTIONS_STATE",
];

/// The most rows Meta takes in one request.
pub const MAX_ROWS: usize = 10_000;

/// One contact's row: a value per [`SCHEMA`] key (hashed, or `""` when unknown),
/// then, for an audience that asks for Limited Data Use, its three
/// [`LDU_COLUMNS`] as text (`"LDU"` or `""`, the country, the state), which the
/// request body sends typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Row(pub Vec<String>);

impl Row {
    /// The row with its Limited Data Use columns: `Some((country, state))` limits
    /// it, `None` says it is not limited (a row of an LDU audience all the same).
    #[must_use]
    pub fn with_ldu(mut self, ldu: Option<(u32, u32)>) -> Row {
        self.0.truncate(SCHEMA.len());
        let (option, country, state) = ldu.map_or(("", 0, 0), |(c, s)| ("LDU", c, s));
        self.0
            .extend([option.to_owned(), country.to_string(), state.to_string()]);
        self
    }

    /// Its Limited Data Use: `None` without the columns, `Some(None)` not limited,
    /// `Some(Some((country, state)))` limited.
    pub fn ldu(&self) -> Option<Option<(u32, u32)>> {
        let [option, country, state] = self.0.get(SCHEMA.len()..)? else {
            return None;
        };
        let code = |text: &str| text.parse().unwrap_or(0);
        Some((option == "LDU").then(|| (code(country), code(state))))
    }

    /// The value of `key` (a [`SCHEMA`] name), `""` when unknown.
    pub fn get(&self, key: &str) -> &str {
        SCHEMA
            .iter()
            .position(|k| *k == key)
            .and_then(|i| self.0.get(i))
            .map_or("", String::as_str)
    }

    /// Whether Meta can match it: it needs an e-mail or a phone (names and places
    /// alone match too few people to be worth a row).
    pub fn is_usable(&self) -> bool {
        !self.get("EMAIL").is_empty() || !self.get("PHONE").is_empty()
    }
}

/// Add or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Add,
    Remove,
}

impl Operation {
    /// The HTTP method of the `/users` edge for it.
    pub fn method(self) -> &'static str {
        match self {
            Operation::Add => "POST",
            Operation::Remove => "DELETE",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Add => "add",
            Operation::Remove => "remove",
        }
    }
}

/// The session fields, when one change spans several requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: u64,
    pub batch_seq: u32,
    pub last_batch_flag: bool,
    pub estimated_num_total: u64,
}

/// What one request carries (credentials are added by the client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersRequest {
    pub operation: Operation,
    pub rows: Vec<Row>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// What Meta's answer means for the rows of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersOutcome {
    /// Meta took the request: `received` rows, of which `invalid` it could not use.
    Applied {
        received: u64,
        invalid: u64,
        fbtrace_id: Option<String>,
    },
    /// Temporary (throttling, an outage): send again later.
    Retry { reason: String },
    /// The token or its permission: hold until a person fixes it.
    Held { reason: String },
    /// The audience can never take these rows (flagged, gone, too small to remove
    /// from, a request Meta calls invalid): dead-letter with Meta's words.
    Refused { code: &'static str, reason: String },
}

#[derive(Deserialize)]
struct Success {
    #[serde(default)]
    num_received: Option<u64>,
    #[serde(default)]
    num_invalid_entries: u64,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

/// Classifies Meta's answer to one `/users` request of `rows` rows.
pub fn classify_users(status: u16, body: &str, rows: usize) -> UsersOutcome {
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Success>(body) {
            Ok(Success {
                num_received: Some(received),
                num_invalid_entries,
                fbtrace_id,
            }) if received as usize == rows => UsersOutcome::Applied {
                received,
                invalid: num_invalid_entries,
                fbtrace_id,
            },
            // Adding and removing are idempotent at Meta: a short count goes again.
            Ok(Success {
                num_received: Some(received),
                ..
            }) => UsersOutcome::Retry {
                reason: format!("Meta received {received} of {rows} rows"),
            },
            _ => UsersOutcome::Retry {
                reason: format!("unreadable {status} answer from Meta's audience API"),
            },
        };
    }
    let Ok(Failure { error }) = serde_json::from_str::<Failure>(body) else {
        return match without_error(status) {
            Bare::Refused(reason) => UsersOutcome::Held { reason },
            Bare::Retry(reason) => UsersOutcome::Retry { reason },
        };
    };
    by_error(&error, status)
}

fn by_error(error: &MetaError, status: u16) -> UsersOutcome {
    let reason = error.reason();
    let refused = |code| UsersOutcome::Refused {
        code,
        reason: reason.clone(),
    };
    match (error.code, error.error_subcode) {
        // Flagged for suggesting health or financial data (§5.1): never retried.
        (100, Some(1_713_230)) => refused(AUDIENCE_BLOCKED),
        // "Object does not exist": the audience was deleted, or the id is wrong.
        (100, Some(33)) | (803, _) => refused(AUDIENCE_NOT_FOUND),
        (200, Some(1_870_047)) => refused(AUDIENCE_TOO_SMALL),
        (190 | 102 | 10 | 200..=299, _) => UsersOutcome::Held { reason },
        (1 | 2 | 4 | 17 | 32 | 341 | 368 | 613 | 2650 | 80000..=80099, _) => {
            UsersOutcome::Retry { reason }
        }
        _ if error.is_transient || status >= 500 || status == 429 => UsersOutcome::Retry { reason },
        _ => refused(AUDIENCE_REFUSED),
    }
}

/// What `GET /{version}/{audience_id}?fields=name,operation_status` says of an
/// audience, for `ghl-capi verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceState {
    /// The token reads it, and Meta takes rows for it.
    Usable { name: String, status: String },
    /// Flagged (`operation_status` 471: it suggests health or financial data):
    /// Meta refuses every change.
    Flagged { name: String, status: String },
    /// The token cannot read it (missing, another ad account, no permission).
    Unreadable { reason: String },
    /// No answer worth reading: try again later.
    Unavailable { reason: String },
}

/// The `operation_status` code of a flagged audience.
pub const FLAGGED: i64 = 471;

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    name: String,
    #[serde(default)]
    operation_status: Option<OperationStatus>,
}

#[derive(Deserialize)]
struct OperationStatus {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    description: String,
}

/// Classifies Meta's answer to the audience read.
pub fn classify_status(status: u16, body: &str) -> AudienceState {
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Status>(body) {
            Ok(Status {
                name,
                operation_status,
            }) => {
                let (code, description) =
                    operation_status.map_or((0, String::new()), |s| (s.code, s.description));
                let status = format!("operation_status {code} {description}")
                    .trim()
                    .to_owned();
                if code == FLAGGED {
                    AudienceState::Flagged { name, status }
                } else {
                    AudienceState::Usable { name, status }
                }
            }
            Err(_) => AudienceState::Unavailable {
                reason: format!("unreadable {status} answer from Meta"),
            },
        };
    }
    match serde_json::from_str::<Failure>(body) {
        Ok(Failure { error }) if status < 500 && !error.is_transient => AudienceState::Unreadable {
            reason: error.reason(),
        },
        Ok(Failure { error }) => AudienceState::Unavailable {
            reason: error.reason(),
        },
        Err(_) => match without_error(status) {
            Bare::Refused(reason) => AudienceState::Unreadable { reason },
            Bare::Retry(reason) => AudienceState::Unavailable { reason },
        },
    }
}

/// Letter codes of rows an audience refused.
pub const AUDIENCE_BLOCKED: &str = "audience_blocked";
pub const AUDIENCE_NOT_FOUND: &str = "audience_not_found";
pub const AUDIENCE_TOO_SMALL: &str = "audience_too_small";
pub const AUDIENCE_REFUSED: &str = "refused_by_meta";

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: i64, subcode: Option<i64>) -> String {
        serde_json::json!({"error": {"message": "Audience Upload Blocked", "code": code,
            "error_subcode": subcode, "fbtrace_id": "AbC"}})
        .to_string()
    }

    #[test]
    fn a_full_count_is_applied_and_a_short_one_goes_again() {
        let ok = r#"{"audience_id":"1","session_id":"9","num_received":2,"num_invalid_entries":1,"invalid_entry_samples":{}}"#;
        assert_eq!(
            classify_users(200, ok, 2),
            UsersOutcome::Applied {
                received: 2,
                invalid: 1,
                fbtrace_id: None
            }
        );
        assert!(matches!(
            classify_users(200, ok, 3),
            UsersOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify_users(200, "<html>", 1),
            UsersOutcome::Retry { .. }
        ));
    }

    #[test]
    fn an_audiences_status_tells_a_flagged_one() {
        let ok =
            r#"{"id":"1","name":"VIPs","operation_status":{"code":200,"description":"Normal"}}"#;
        assert!(
            matches!(classify_status(200, ok), AudienceState::Usable { name, .. } if name == "VIPs")
        );
        let flagged = r#"{"id":"1","name":"VIPs","operation_status":{"code":471,"description":"Restricted"}}"#;
        assert!(matches!(
            classify_status(200, flagged),
            AudienceState::Flagged { .. }
        ));
        assert!(matches!(
            classify_status(400, &error(100, Some(33))),
            AudienceState::Unreadable { .. }
        ));
        assert!(matches!(
            classify_status(503, ""),
            AudienceState::Unavailable { .. }
        ));
    }

    #[test]
    fn errors_are_classified_by_code() {
        let class = |code, sub, status| classify_users(status, &error(code, sub), 1);
        assert!(matches!(
            class(100, Some(1_713_230), 400),
            UsersOutcome::Refused { code: AUDIENCE_BLOCKED, reason } if reason.contains("Audience Upload Blocked") && reason.contains("AbC")
        ));
        assert!(matches!(
            class(100, Some(33), 400),
            UsersOutcome::Refused {
                code: AUDIENCE_NOT_FOUND,
                ..
            }
        ));
        assert!(matches!(
            class(200, Some(1_870_047), 400),
            UsersOutcome::Refused {
                code: AUDIENCE_TOO_SMALL,
                ..
            }
        ));
        for throttled in [80003, 613, 17, 2650] {
            assert!(matches!(
                class(throttled, None, 400),
                UsersOutcome::Retry { .. }
            ));
        }
        assert!(matches!(class(190, None, 400), UsersOutcome::Held { .. }));
        assert!(matches!(class(200, None, 403), UsersOutcome::Held { .. }));
        assert!(matches!(class(1, None, 500), UsersOutcome::Retry { .. }));
        assert!(matches!(
            class(100, None, 400),
            UsersOutcome::Refused {
                code: AUDIENCE_REFUSED,
                ..
            }
        ));
        assert!(matches!(
            classify_users(502, "<html>", 1),
            UsersOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify_users(404, "", 1),
            UsersOutcome::Held { .. }
        ));
    }
}
