//! Match quality as `ghl-capi verify` tells it: per pixel, the pipeline's own
//! record of its latest events (average score, the keys they lack, what in GHL
//! would fill them) beside Meta's figures where its Dataset Quality API gives any.

use std::fmt::Write as _;

use chrono::NaiveDate;

use crate::capi::client::DatasetQualityApi;
use crate::capi::dataset_quality::{self, MetaQuality};
use crate::error::chain;
use crate::ports::state::{StateError, StateStore};
use crate::quality::readiness::{self, Asked, Check};
use crate::quality::{self, ByEvent, Tally, advice};

/// How far back `verify` looks for the latest events.
pub const DAYS_BACK: u64 = 28;

/// The latest (at least `wanted`, at most [`DAYS_BACK`] days of) events Meta took
/// for `dataset_id`, and the days they cover.
pub async fn latest(
    state: &impl StateStore,
    dataset_id: &str,
    wanted: u64,
    today: NaiveDate,
) -> Result<(ByEvent, u64), StateError> {
    quality::latest(state, dataset_id, wanted, today, DAYS_BACK).await
}

/// The pipeline's record of a pixel's latest events, as lines of text.
pub fn ours(subject: &str, (by_event, days): &(ByEvent, u64)) -> String {
    let mut all = Tally::default();
    by_event.values().for_each(|t| all.add(t));
    if all.sent == 0 {
        return format!(
            "  {subject}: no events sent in the last {DAYS_BACK} days, so nothing to score\n"
        );
    }
    let mut text = format!(
        "  {subject}: the last {} events ({}), average score {} of 10\n",
        all.sent,
        match days {
            1 => "today".to_owned(),
            n => format!("{n} days"),
        },
        all.score()
    );
    for (name, tally) in by_event {
        let gaps: Vec<String> = quality::gaps(tally)
            .filter(|(_, share)| *share > 0)
            .take(4)
            .map(|(key, share)| format!("{} {share} %", key.name()))
            .collect();
        let _ = writeln!(
            text,
            "    {name:<20} {:>7} events  score {:>4}  lacking: {}",
            tally.sent,
            tally.score(),
            if gaps.is_empty() {
                "nothing".to_owned()
            } else {
                gaps.join(", ")
            }
        );
    }
    let lead_ads = advice::uses_lead_ads(by_event);
    for (name, tally) in by_event {
        for (key, share) in advice::worth_advice(tally, lead_ads).into_iter().take(3) {
            let _ = writeln!(
                text,
                "    {share} % of {name} events have no {}: {}",
                key.name(),
                advice::fill(key)
            );
        }
    }
    text
}

/// Meta's own figures for the pixel, or why there are none, as lines of text.
pub async fn meta(api: &impl DatasetQualityApi, dataset_id: &str) -> String {
    let told = match api.dataset_quality(dataset_id).await {
        Ok(answer) => dataset_quality::read(&answer),
        Err(e) => MetaQuality::Failed(chain(&e)),
    };
    match told {
        MetaQuality::Scored(events) => {
            let mut text = String::from("    Meta's own figures (Dataset Quality API):\n");
            for e in events {
                let keys: Vec<String> = e
                    .keys
                    .iter()
                    .map(|(key, share)| match share {
                        Some(share) => format!("{key} {share:.0} %"),
                        None => key.clone(),
                    })
                    .collect();
                let score = e
                    .composite_score
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
                let _ = writeln!(
                    text,
                    "      {:<20} match quality {score} of 10{}{}",
                    e.event_name,
                    e.event_coverage
                        .map(|c| format!(", event coverage {c:.0} %"))
                        .unwrap_or_default(),
                    if keys.is_empty() {
                        String::new()
                    } else {
                        format!(", keys: {}", keys.join(", "))
                    }
                );
            }
            text
        }
        MetaQuality::Unscored => "    Meta's own figures: none; Meta scores web events only, and \
                                  scores none of the CRM events this pipeline sends\n"
            .into(),
        MetaQuality::NotPermitted(why) => format!(
            "    Meta's own figures: not shown; the pixel's token may not read Meta's Dataset \
             Quality API (it needs ads_read, and ads_management or business_management): {why}\n"
        ),
        MetaQuality::Failed(why) => format!("    Meta's own figures: not read: {why}\n"),
    }
}

/// A pixel's Conversion Leads readiness from its last month's record (as of
/// `today`): each check, and whether none failed (a check the record cannot
/// judge fails nothing).
pub async fn readiness(
    state: &impl StateStore,
    dataset_id: &str,
    today: NaiveDate,
    asked: &Asked<'_>,
) -> Result<(Vec<Check>, bool), StateError> {
    let first = today
        .checked_sub_days(chrono::Days::new(readiness::MONTH_DAYS - 1))
        .unwrap_or(today);
    let days = quality::read(state, dataset_id, first, today).await?;
    let checks = readiness::assess(&days, today, asked);
    let ready = checks.iter().all(|c| c.met != Some(false));
    Ok((checks, ready))
}

/// Readiness checks as lines of text, each with its figure and, when not met,
/// what to change.
pub fn readiness_text(subject: &str, checks: &[Check]) -> String {
    let mut text = format!(
        "\nConversion Leads readiness of {subject}, from the pipeline's own record (test events never count):\n"
    );
    for check in checks {
        let said = match check.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "unknown",
        };
        let _ = writeln!(
            text,
            "  {said:<8} {:<20} {}",
            check.requirement, check.figure
        );
        if !check.change.is_empty() {
            let _ = writeln!(text, "  {:<8} {:<20} → {}", "", "", check.change);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capi::{Answer, TransportError};

    /// Meta's Dataset Quality API, answering as told, or not at all.
    struct Meta(Option<Answer>);

    impl DatasetQualityApi for Meta {
        async fn dataset_quality(&self, dataset_id: &str) -> Result<Answer, TransportError> {
            self.0.clone().ok_or_else(|| TransportError::NoToken {
                id: dataset_id.to_owned(),
            })
        }
    }

    #[tokio::test]
    async fn metas_figures_unread_are_one_line_saying_why() {
        let none = meta(&Meta(None), "123").await;
        assert_eq!(
            none,
            "    Meta's own figures: not read: no access token is configured for 123\n"
        );
        let busy = Answer {
            status: 429,
            body: r#"{"error":{"code":4,"message":"Application request limit reached"}}"#.into(),
        };
        let throttled = meta(&Meta(Some(busy)), "123").await;
        assert!(
            throttled.starts_with("    Meta's own figures: not read: Meta answered 429 (4)")
                && throttled.lines().count() == 1,
            "{throttled}"
        );
    }

    #[test]
    fn a_pixel_with_nothing_sent_says_so() {
        let text = ours("main (1)", &(ByEvent::new(), 28));
        assert_eq!(
            text,
            "  main (1): no events sent in the last 28 days, so nothing to score\n"
        );
    }
}
