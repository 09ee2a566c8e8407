//! Conversion Leads readiness: a pixel's record checked against what Meta asks
//! before it optimises for a CRM stage (`reference/meta-capi.md` §10.3 and §5.3):
//! at least 200 leads a month, lead coverage of 60 % or more, two stages or more
//! with the raw lead among them, uploads every day, seven days of data, a target
//! stage reached by 1–40 % of leads, and no test events. Each check says met or
//! not, its figure, and what to change.

use chrono::{Days, NaiveDate};

use super::{ByEvent, Tally};
use crate::capi::score::Key;

/// The raw lead's event name.
pub const RAW_LEAD: &str = "Lead";
/// Leads a month Meta asks for.
pub const LEADS_A_MONTH: u64 = 200;
/// The share of Meta's leads the CRM must send an event for (%).
pub const COVERAGE: u64 = 60;
/// The window a target stage must be reached in, and conversion is counted over.
pub const TARGET_DAYS: u64 = 28;
/// The days a month is counted over.
pub const MONTH_DAYS: u64 = 30;

/// One requirement, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub requirement: &'static str,
    /// `None`: the record cannot tell (said in `figure`).
    pub met: Option<bool>,
    pub figure: String,
    /// What to change when it is not met; empty when it is.
    pub change: String,
}

/// What readiness is judged on besides the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked<'a> {
    /// The stage to optimise for; the stage with the fewest events when not given.
    pub target: Option<&'a str>,
    /// Meta's leads in the month (Ads Manager's figure), for lead coverage.
    pub meta_leads: Option<u64>,
    /// Whether the pixel sends with a test event code.
    pub test_pixel: bool,
}

/// Events that count: sent, less test events.
fn counted(tally: &Tally) -> u64 {
    tally.sent.saturating_sub(tally.test)
}

fn check(requirement: &'static str, met: bool, figure: String, change: &str) -> Check {
    Check {
        requirement,
        met: Some(met),
        figure,
        change: if met {
            String::new()
        } else {
            change.to_owned()
        },
    }
}

/// Judges `days` (each day's tallies, the last [`MONTH_DAYS`] up to `today`).
pub fn assess(days: &[(NaiveDate, ByEvent)], today: NaiveDate, asked: &Asked<'_>) -> Vec<Check> {
    let since = |n: u64| today.checked_sub_days(Days::new(n - 1)).unwrap_or(today);
    let sum = |from: NaiveDate| -> ByEvent {
        let mut summed = ByEvent::new();
        for (_, by_event) in days.iter().filter(|(day, _)| *day >= from && *day <= today) {
            for (name, tally) in by_event {
                summed.entry(name.clone()).or_default().add(tally);
            }
        }
        summed
    };
    let month = sum(since(MONTH_DAYS));
    let window = sum(since(TARGET_DAYS));
    let leads = month.get(RAW_LEAD).map_or(0, counted);
    let with_lead_id = month
        .get(RAW_LEAD)
        .map_or(0, |t| t.has.get(&Key::LeadId).copied().unwrap_or(0));
    let stages: Vec<&str> = month
        .iter()
        .filter(|(_, t)| counted(t) > 0)
        .map(|(name, _)| name.as_str())
        .collect();
    let mut checks = vec![check(
        "leads a month",
        leads >= LEADS_A_MONTH,
        format!(
            "{leads} {RAW_LEAD} events in the last {MONTH_DAYS} days (Meta asks for {LEADS_A_MONTH})"
        ),
        "send an event for every lead: a `Lead` rule on contact.created (or the form's workflow), with no condition that leaves leads out",
    )];
    checks.push(match asked.meta_leads {
        Some(meta) if meta > 0 => {
            let share = with_lead_id * 100 / meta;
            check(
                "lead coverage",
                share >= COVERAGE,
                format!("{share} %: {with_lead_id} {RAW_LEAD} events carry a lead id, of {meta} leads Meta counted"),
                "map the Lead Ads lead id on the Lead rule (`lead_id = { field = \"custom.<the lead id field>\" }`) and make sure every Lead Ads lead reaches GHL",
            )
        }
        _ => Check {
            requirement: "lead coverage",
            met: None,
            figure: format!(
                "{with_lead_id} {RAW_LEAD} events in the last {MONTH_DAYS} days carry a Lead Ads lead id; give --meta-leads N (the month's leads in Ads Manager) to judge the {COVERAGE} % Meta asks for"
            ),
            change: String::new(),
        },
    });
    checks.push(check(
        "stages",
        stages.len() >= 2 && stages.contains(&RAW_LEAD),
        format!(
            "{} sent: {}",
            stages.len(),
            if stages.is_empty() { "none".to_owned() } else { stages.join(", ") }
        ),
        "send the raw lead (`Lead`) and at least one later stage (three or more advised): an opportunity.stage_changed rule per stage, with its own event name",
    ));
    let active: Vec<NaiveDate> = days
        .iter()
        .filter(|(day, by_event)| *day >= since(7) && by_event.values().any(|t| counted(t) > 0))
        .map(|(day, _)| *day)
        .collect();
    checks.push(check(
        "uploads every day",
        active.len() >= 7,
        format!("events on {} of the last 7 days", active.len()),
        "keep events flowing daily: check the status page's backlog and breakers, and that GHL still delivers (verify's recon lines)",
    ));
    let with_data = days
        .iter()
        .filter(|(_, by_event)| by_event.values().any(|t| counted(t) > 0))
        .count();
    checks.push(check(
        "seven days of data",
        with_data >= 7,
        format!("{with_data} days with events in the last {MONTH_DAYS}"),
        "wait: Meta needs seven days of events, not necessarily in a row",
    ));
    let target = asked.target.map(str::to_owned).or_else(|| {
        window
            .iter()
            .filter(|(name, t)| name.as_str() != RAW_LEAD && counted(t) > 0)
            .min_by_key(|(_, t)| counted(t))
            .map(|(name, _)| name.clone())
    });
    let window_leads = window.get(RAW_LEAD).map_or(0, counted);
    checks.push(match target {
        None => check(
            "target stage",
            false,
            format!("no stage after the raw lead in the last {TARGET_DAYS} days"),
            "add a rule for the stage to optimise for (a qualified lead, a booked call, a sale)",
        ),
        Some(name) => {
            let reached = window.get(&name).map_or(0, counted);
            let rate = (window_leads > 0).then(|| reached * 1000 / window_leads);
            let met = rate.is_some_and(|r| (10..=400).contains(&r));
            let rate_text = rate.map_or("no leads to divide by".to_owned(), |r| format!("{}.{} %", r / 10, r % 10));
            check(
                "target stage",
                met,
                format!(
                    "{name}: {reached} in the last {TARGET_DAYS} days for {window_leads} leads, {rate_text} (Meta asks 1–40 %){}",
                    if asked.target.is_none() { "; the stage with the fewest events, choose another with --target" } else { "" }
                ),
                "choose a target stage that 1–40 % of leads reach within 28 days: a deeper stage if more reach it, an earlier one if fewer",
            )
        }
    });
    let test: u64 = month.values().map(|t| t.test).sum();
    checks.push(check(
        "no test events",
        !asked.test_pixel,
        format!("{test} test events in the last {MONTH_DAYS} days (never counted)"),
        "remove test_event_code from the pixel in the mapping: events sent with it do not count",
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
    }

    fn tally(sent: u64, lead_ids: u64) -> Tally {
        Tally {
            sent,
            has: [(Key::LeadId, lead_ids)].into_iter().collect(),
            ..Tally::default()
        }
    }

    /// Thirty days of `leads` Leads (all with a lead id) and `qualified`
    /// Qualified events a day.
    fn history(leads: u64, qualified: u64) -> Vec<(NaiveDate, ByEvent)> {
        (1..=30)
            .map(|d| {
                let mut by_event = ByEvent::new();
                by_event.insert(RAW_LEAD.into(), tally(leads, leads));
                if qualified > 0 {
                    by_event.insert("Qualified".into(), tally(qualified, 0));
                }
                (day(d), by_event)
            })
            .collect()
    }

    fn judged(
        days: &[(NaiveDate, ByEvent)],
        asked: &Asked<'_>,
    ) -> Vec<(&'static str, Option<bool>)> {
        assess(days, day(30), asked)
            .into_iter()
            .map(|c| (c.requirement, c.met))
            .collect()
    }

    #[test]
    fn a_pixel_that_meets_everything_is_ready() {
        let asked = Asked {
            meta_leads: Some(300),
            ..Asked::default()
        };
        let checks = assess(&history(10, 2), day(30), &asked);
        assert!(checks.iter().all(|c| c.met == Some(true)), "{checks:#?}");
        assert!(checks.iter().all(|c| c.change.is_empty()));
        let target = checks
            .iter()
            .find(|c| c.requirement == "target stage")
            .expect("target");
        assert!(
            target
                .figure
                .starts_with("Qualified: 56 in the last 28 days for 280 leads, 20.0 %"),
            "{}",
            target.figure
        );
    }

    #[test]
    fn each_way_of_falling_short_is_said_with_its_change() {
        let few = judged(&history(5, 1), &Asked::default());
        assert_eq!(few[0], ("leads a month", Some(false)), "150 leads");
        assert_eq!(few[1], ("lead coverage", None), "Meta's count not given");
        let short = judged(
            &history(10, 2),
            &Asked {
                meta_leads: Some(1000),
                ..Asked::default()
            },
        );
        assert_eq!(short[1], ("lead coverage", Some(false)), "300 of 1000");
        let one_stage = judged(&history(10, 0), &Asked::default());
        assert_eq!(one_stage[2], ("stages", Some(false)));
        assert_eq!(one_stage[5], ("target stage", Some(false)));
        let too_many = judged(&history(10, 5), &Asked::default());
        assert_eq!(too_many[5], ("target stage", Some(false)), "50 % reach it");
        let too_few = judged(
            &history(10, 2),
            &Asked {
                target: Some("Purchase"),
                ..Asked::default()
            },
        );
        assert_eq!(
            too_few[5],
            ("target stage", Some(false)),
            "no Purchase at all"
        );
        let mut gaps = history(10, 2);
        gaps.retain(|(d, _)| d.day() % 2 == 0);
        let gappy = judged(&gaps, &Asked::default());
        assert_eq!(gappy[3], ("uploads every day", Some(false)));
        assert_eq!(
            gappy[4],
            ("seven days of data", Some(true)),
            "15 days, not in a row"
        );
        let young = judged(&history(10, 2)[25..], &Asked::default());
        assert_eq!(young[4], ("seven days of data", Some(false)));
        let test = judged(
            &history(10, 2),
            &Asked {
                test_pixel: true,
                ..Asked::default()
            },
        );
        assert_eq!(test[6], ("no test events", Some(false)));
        let checks = assess(
            &history(10, 2),
            day(30),
            &Asked {
                test_pixel: true,
                ..Asked::default()
            },
        );
        assert!(checks[6].change.contains("remove test_event_code"));
    }

    #[test]
    fn test_events_never_count() {
        let mut days = history(10, 2);
        for (_, by_event) in &mut days {
            for tally in by_event.values_mut() {
                tally.test = tally.sent;
            }
        }
        let checks = judged(&days, &Asked::default());
        assert_eq!(
            checks[0],
            ("leads a month", Some(false)),
            "every lead was a test"
        );
        assert_eq!(checks[4], ("seven days of data", Some(false)));
    }
}
