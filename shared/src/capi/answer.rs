//! What Meta's answer to `POST /{version}/{pixel}/events` means for the batch.
//!
//! Meta rejects a whole request for one bad event, so the dispatcher needs to know,
//! per answer, whether to retry it, split it to isolate an offender, hold it until
//! the token is fixed, or dead-letter it. The policy follows Meta's error codes
//! (`reference/meta-capi.md` §4.2): handle by code and subcode, never by message text.

use serde::Deserialize;

/// What to do with the events of a request, given Meta's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Meta took them: `events_received` of them.
    Delivered {
        events_received: u64,
        fbtrace_id: Option<String>,
    },
    /// Temporary (rate limits, outages, 5xx, timeouts): send again later, with backoff.
    Retry { reason: String },
    /// Meta refused the whole request for something no event can fix: the token is
    /// invalid or lacks permission, the dataset is not there, the URL is wrong.
    /// Nothing is split; the events are kept and tried again later, with a loud
    /// alert: they must never be dropped for this.
    Condemned { reason: String },
    /// One event (at least) is invalid and Meta refused the whole request: split the
    /// batch to find it; a single event with this answer is dead-lettered.
    Invalid { reason: String },
}

#[derive(Debug, Deserialize)]
struct Success {
    events_received: u64,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Failure {
    pub(super) error: MetaError,
}

/// Meta's error object.
#[derive(Debug, Deserialize)]
pub(super) struct MetaError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    pub(super) code: i64,
    #[serde(default)]
    pub(super) error_subcode: Option<i64>,
    #[serde(default)]
    pub(super) is_transient: bool,
    #[serde(default)]
    error_user_msg: Option<String>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

impl MetaError {
    pub(super) fn reason(&self) -> String {
        let subcode = self
            .error_subcode
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        let detail = self.error_user_msg.as_deref().unwrap_or(&self.message);
        let trace = self
            .fbtrace_id
            .as_deref()
            .map(|t| format!(" (fbtrace_id {t})"))
            .unwrap_or_default();
        format!("Meta error {}{subcode}: {detail}{trace}", self.code)
    }
}

/// An error answer without Meta's error object.
pub(super) enum Bare {
    /// A `4xx` (but `429`): the request as a whole, whatever it carried.
    Refused(String),
    Retry(String),
}

/// HTML error pages and empty bodies come from outages, proxies, or a wrong
/// address: nothing the data could fix.
pub(super) fn without_error(status: u16) -> Bare {
    let reason = format!("HTTP {status} without a Meta error object");
    match status {
        400..=499 if status != 429 => Bare::Refused(format!(
            "{reason}; check GRAPH_API_BASE_URL and GRAPH_API_VERSION"
        )),
        _ => Bare::Retry(reason),
    }
}

/// Meta's subcode for a user parameter it wanted hashed and got in clear.
const NOT_HASHED: i64 = 2_804_016;
/// Meta's subcode for a standard event refused with `action_source =
/// business_messaging`.
const STANDARD_EVENT_REFUSED: i64 = 2_804_066;

/// Meta's code for a call to a deprecated Graph API version.
const DEPRECATED_VERSION: i64 = 2635;

/// What says the Graph API version is on its way out, if anything does: the
/// `X-Ad-Api-Version-Warning` header of a call Meta auto-upgraded, or error 2635
/// (`reference/meta-capi.md` §10.1).
pub(super) fn version_trouble(warning: Option<&str>, status: u16, body: &str) -> Option<String> {
    if let Some(warning) = warning {
        return Some(warning.to_owned());
    }
    if status < 400 {
        return None;
    }
    let Failure { error } = serde_json::from_str(body).ok()?;
    (error.code == DEPRECATED_VERSION).then(|| error.reason())
}

/// Classifies an HTTP answer from the events endpoint.
pub fn classify(status: u16, body: &str) -> Disposition {
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Success>(body) {
            Ok(s) => Disposition::Delivered {
                events_received: s.events_received,
                fbtrace_id: s.fbtrace_id,
            },
            // A 2xx we cannot read gives no proof of delivery: try again (the event
            // ids make a repeat harmless at Meta).
            Err(_) => Disposition::Retry {
                reason: format!("unreadable {status} answer from Meta"),
            },
        };
    }
    // Too large: the request, not the token or the dataset. Split like a refused
    // batch (a single event this large is a letter); the pixel is never held.
    if status == 413 {
        return Disposition::Invalid {
            reason: "HTTP 413: Meta refused the request as too large".into(),
        };
    }
    let Ok(Failure { error }) = serde_json::from_str::<Failure>(body) else {
        return match without_error(status) {
            Bare::Refused(reason) => Disposition::Condemned { reason },
            Bare::Retry(reason) => Disposition::Retry { reason },
        };
    };
    let reason = error.reason();
    match (error.code, error.error_subcode) {
        // Refusals of the event itself, whatever the code or transience they come
        // with (`reference/meta-capi.md` §10.4): a user parameter sent unhashed,
        // a standard event refused for `business_messaging`.
        (_, Some(NOT_HASHED | STANDARD_EVENT_REFUSED)) => Disposition::Invalid { reason },
        // The token, a permission, or the dataset ("object does not exist, cannot be
        // loaded due to missing permissions"): request-wide, whatever the events.
        (190 | 102 | 10 | 200..=299, _) | (100, Some(33)) => Disposition::Condemned { reason },
        // The API version is deprecated: every request of every pixel, until
        // GRAPH_API_VERSION names a current one.
        (DEPRECATED_VERSION, _) => Disposition::Condemned {
            reason: format!("{reason}; set GRAPH_API_VERSION to a current version"),
        },
        (code, _) => by_code(code, reason, error.is_transient, status),
    }
}

/// The rest of [`classify`]: by code alone.
fn by_code(code: i64, reason: String, transient: bool, status: u16) -> Disposition {
    match code {
        1 | 2 | 4 | 17 | 32 | 341 | 368 | 613 | 21009 | 80000..=80099 => {
            Disposition::Retry { reason }
        }
        _ if transient || status >= 500 || status == 429 => Disposition::Retry { reason },
        100 => Disposition::Invalid { reason },
        // Not about an event (code 3, a capability, or one Meta adds later): the
        // request as a whole, held like a token problem.
        _ => Disposition::Condemned { reason },
    }
}

/// `appsecret_proof` for a token: HMAC-SHA256(app secret, token), lowercase hex.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length, so the constructor cannot fail.
    Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .map(|mut mac| {
            mac.update(access_token.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: i64, subcode: Option<i64>, transient: bool) -> String {
        serde_json::json!({"error": {"message": "Invalid parameter", "type": "OAuthException", "code": code,
            "error_subcode": subcode, "is_transient": transient,
            "error_user_msg": "The timestamp for this event is too far in the past.", "fbtrace_id": "A6UyE"}})
        .to_string()
    }

    #[test]
    fn a_success_reports_what_meta_received() {
        assert_eq!(
            classify(
                200,
                r#"{"events_received": 3, "messages": [], "fbtrace_id": "Ax"}"#
            ),
            Disposition::Delivered {
                events_received: 3,
                fbtrace_id: Some("Ax".into())
            }
        );
        assert_eq!(
            classify(200, r#"{"events_received": 1}"#),
            Disposition::Delivered {
                events_received: 1,
                fbtrace_id: None
            }
        );
        assert!(matches!(classify(200, "<html>"), Disposition::Retry { .. }));
    }

    #[test]
    fn a_validation_error_isolates_with_metas_message() {
        let d = classify(400, &error(100, Some(2_804_003), false));
        let Disposition::Invalid { reason } = d else {
            panic!("{d:?}")
        };
        assert!(
            reason.contains("100/2804003")
                && reason.contains("too far in the past")
                && reason.contains("A6UyE")
        );
    }

    #[test]
    fn rate_limits_outages_and_transients_are_retried() {
        for code in [1, 2, 4, 17, 32, 341, 613, 80_000, 80_004] {
            assert!(
                matches!(
                    classify(400, &error(code, None, false)),
                    Disposition::Retry { .. }
                ),
                "{code}"
            );
        }
        assert!(
            matches!(
                classify(400, &error(100, None, true)),
                Disposition::Retry { .. }
            ),
            "is_transient wins"
        );
        assert!(matches!(
            classify(503, "<html>busy</html>"),
            Disposition::Retry { .. }
        ));
        assert!(matches!(
            classify(500, &error(9999, None, false)),
            Disposition::Retry { .. }
        ));
    }

    #[test]
    fn a_too_large_request_is_split_never_held() {
        for body in [
            "",
            "<html>Request Entity Too Large</html>",
            &error(1, None, true),
        ] {
            let d = classify(413, body);
            assert!(
                matches!(&d, Disposition::Invalid { reason } if reason.contains("413")),
                "{d:?}"
            );
        }
    }

    #[test]
    fn unhashed_parameters_and_refused_standard_events_are_the_events_own_refusals() {
        for (code, subcode, transient) in [
            (100, 2_804_016, false),
            (100, 2_804_066, false),
            (3, 2_804_016, false),
            (100, 2_804_066, true),
        ] {
            let d = classify(400, &error(code, Some(subcode), transient));
            assert!(
                matches!(&d, Disposition::Invalid { reason } if reason.contains(&subcode.to_string())),
                "{code}/{subcode}: {d:?}"
            );
        }
    }

    #[test]
    fn request_wide_errors_are_held_never_split() {
        let missing = classify(400, &error(100, Some(33), false));
        assert!(
            matches!(missing, Disposition::Condemned { .. }),
            "{missing:?}"
        );
    }

    #[test]
    fn token_and_permission_errors_are_held_not_dropped() {
        for code in [190, 102, 10, 200, 299] {
            assert!(
                matches!(
                    classify(400, &error(code, Some(463), false)),
                    Disposition::Condemned { .. }
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn other_client_errors_condemn_the_request_not_its_events() {
        assert!(matches!(
            classify(400, &error(3, None, false)),
            Disposition::Condemned { .. }
        ));
        assert!(matches!(classify(404, ""), Disposition::Condemned { .. }));
    }

    #[test]
    fn appsecret_proof_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            appsecret_proof("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
