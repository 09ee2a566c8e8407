//! Meta's Dataset Quality API (`reference/meta-capi.md` §5.2): its own figures for
//! a dataset's events from one sender, read leniently (its shapes are young), and
//! what a refusal means. Meta scores web events only: for CRM events it may answer
//! with nothing, which is said as such, not as an error.

use serde_json::Value;

use super::Answer;

/// What Meta said of one event name.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuality {
    pub event_name: String,
    /// Event Match Quality, 0–10.
    pub composite_score: Option<f64>,
    /// Each identifier Meta names with the share (%) of events carrying it.
    pub keys: Vec<(String, Option<f64>)>,
    /// The share (%) of the browser's events this sender also sent.
    pub event_coverage: Option<f64>,
}

/// Meta's answer, as `verify` tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaQuality {
    Scored(Vec<EventQuality>),
    /// Meta answered, with no figures: it scores web events, and this dataset's
    /// events from this sender are not web events.
    Unscored,
    /// The token may not read it (it needs `ads_read` and `ads_management` or
    /// `business_management`): Meta's words.
    NotPermitted(String),
    /// Any other failure, in words.
    Failed(String),
}

/// Graph error codes that mean the token lacks a permission (10, 200–299) or is
/// not valid for this (190).
fn is_permission(code: i64) -> bool {
    code == 10 || code == 190 || (200..300).contains(&code)
}

pub fn read(answer: &Answer) -> MetaQuality {
    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    if let Some(error) = body.get("error") {
        let message = error["message"].as_str().unwrap_or("no message").to_owned();
        let code = error["code"].as_i64().unwrap_or_default();
        return if answer.status == 403 || is_permission(code) {
            MetaQuality::NotPermitted(message)
        } else {
            MetaQuality::Failed(format!(
                "Meta answered {} ({code}): {message}",
                answer.status
            ))
        };
    }
    if !(200..300).contains(&answer.status) {
        return MetaQuality::Failed(format!("Meta answered {}", answer.status));
    }
    // `{"web": [...]}`, or the same inside `data` (a list or an object).
    let root = match &body["data"] {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        Value::Object(_) => body["data"].clone(),
        _ => body,
    };
    let events: Vec<EventQuality> = root["web"]
        .as_array()
        .map(|list| list.iter().filter_map(event).collect())
        .unwrap_or_default();
    if events.is_empty() {
        MetaQuality::Unscored
    } else {
        MetaQuality::Scored(events)
    }
}

/// A share as a number, or as `{"percentage": n}`.
fn share(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| value["percentage"].as_f64())
}

fn event(item: &Value) -> Option<EventQuality> {
    let quality = &item["event_match_quality"];
    let keys = quality["match_key_feedback"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|k| Some((k["identifier"].as_str()?.to_owned(), share(&k["coverage"]))))
                .collect()
        })
        .unwrap_or_default();
    Some(EventQuality {
        event_name: item["event_name"].as_str()?.to_owned(),
        composite_score: quality["composite_score"].as_f64(),
        keys,
        event_coverage: share(&item["event_coverage"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.into(),
        }
    }

    #[test]
    fn figures_are_read_in_either_wrapping_and_either_shape_of_a_share() {
        let web = r#"{"web":[{"event_name":"Lead","event_match_quality":{"composite_score":6.1,
            "match_key_feedback":[{"identifier":"email","coverage":{"percentage":92.5}},
            {"identifier":"phone","coverage":40}]},"event_coverage":{"percentage":71}}]}"#;
        let wrapped = format!(r#"{{"data":[{web}]}}"#);
        for body in [web.to_owned(), wrapped] {
            let MetaQuality::Scored(events) = read(&answer(200, &body)) else {
                panic!("scored: {body}");
            };
            assert_eq!(events[0].event_name, "Lead");
            assert_eq!(events[0].composite_score, Some(6.1));
            assert_eq!(
                events[0].keys,
                [
                    ("email".to_owned(), Some(92.5)),
                    ("phone".to_owned(), Some(40.0))
                ]
            );
            assert_eq!(events[0].event_coverage, Some(71.0));
        }
    }

    #[test]
    fn no_figures_permission_and_other_failures_are_told_apart() {
        assert_eq!(read(&answer(200, r#"{"web":[]}"#)), MetaQuality::Unscored);
        assert_eq!(read(&answer(200, r#"{"data":[]}"#)), MetaQuality::Unscored);
        let refused = r#"{"error":{"code":200,"message":"Requires ads_read permission"}}"#;
        assert_eq!(
            read(&answer(400, refused)),
            MetaQuality::NotPermitted("Requires ads_read permission".into())
        );
        // Throttled, down, or answering what is no JSON: said, never a permission.
        let throttled = r#"{"error":{"code":80004,"message":"There have been too many calls"}}"#;
        assert!(
            matches!(read(&answer(429, throttled)), MetaQuality::Failed(m) if m.contains("429 (80004)"))
        );
        assert_eq!(
            read(&answer(503, "<html>busy</html>")),
            MetaQuality::Failed("Meta answered 503".into())
        );
        assert_eq!(read(&answer(200, "not json")), MetaQuality::Unscored);
        let other = r#"{"error":{"code":1,"message":"An unknown error occurred"}}"#;
        assert!(
            matches!(read(&answer(500, other)), MetaQuality::Failed(m) if m.contains("unknown error"))
        );
    }
}
