//! The report a person reads: per location, week and stage (event name), the
//! contacts that reached it, the events Meta took, the share carrying a lead id,
//! an e-mail and a phone, and the average identifier coverage score. Dispatch
//! counts into one item per location and week (`report#{location}#{monday}`), one
//! write per location per batch; contacts are a set of short digests of their ids,
//! so each counts once however many events it has.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

use super::{ByEvent, KEPT_FOR, Tally, parsed};
use crate::capi::ServerEvent;
use crate::capi::score::{Coverage, Key};
use crate::normalize::sha256_hex;
use crate::ports::state::{Added, StateError, StateStore};

/// What every key of the report's counters starts with.
pub const PREFIX: &str = "report#";

/// The Monday of `day`'s week.
pub fn week_of(day: NaiveDate) -> NaiveDate {
    day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))
        .unwrap_or(day)
}

fn key(location_id: &str, week: NaiveDate) -> String {
    format!("{PREFIX}{location_id}#{week}")
}

/// A contact's member of a stage's set: 12 hex digits of its id's digest (a GHL
/// id takes 20 characters; the set stays small, and collisions in one location's
/// week are vanishingly rare).
fn member(contact_id: &str) -> String {
    sha256_hex(contact_id)[..12].to_owned()
}

/// Counts `events` (each with its contact) Meta took for `location_id` at `now`
/// (sent with a test event code when `test`): one write.
pub async fn record<'e>(
    state: &impl StateStore,
    location_id: &str,
    events: impl IntoIterator<Item = (&'e ServerEvent, &'e str)>,
    test: bool,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    let mut added = Added::default();
    let mut contacts: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (event, contact_id) in events {
        let name = &event.event_name;
        let coverage = Coverage::of(&event.user_data);
        added.counts.push((format!("{name}|sent"), 1));
        if test {
            added.counts.push((format!("{name}|test"), 1));
        }
        added.counts.push((
            format!("{name}|points"),
            u64::from(coverage.score().hundredths()),
        ));
        for key in [Key::LeadId, Key::Email, Key::Phone] {
            if coverage.has(key) {
                added.counts.push((format!("{name}|has:{}", key.wire()), 1));
            }
        }
        if !contact_id.is_empty() {
            contacts
                .entry(format!("{name}|contacts"))
                .or_default()
                .push(member(contact_id));
        }
    }
    // One counter a name, summed: the update names each attribute once.
    let mut summed: std::collections::BTreeMap<String, u64> = Default::default();
    for (name, n) in added.counts.drain(..) {
        *summed.entry(name).or_default() += n;
    }
    added.counts = summed.into_iter().filter(|(_, n)| *n > 0).collect();
    added.members = contacts.into_iter().collect();
    if added.is_empty() {
        return Ok(());
    }
    let week = week_of(now.date_naive());
    state
        .add_counts(&key(location_id, week), &added, KEPT_FOR)
        .await
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub location_id: String,
    /// The week's Monday.
    pub week: NaiveDate,
    pub stage: String,
    pub tally: Tally,
}

/// The locations with report counters (an operator's listing: on DynamoDB, a
/// scan).
pub async fn locations(state: &impl StateStore) -> Result<Vec<String>, StateError> {
    let mut locations: Vec<String> = (state.counted_under(PREFIX).await?.iter())
        .filter_map(|key| Some(key.strip_prefix(PREFIX)?.rsplit_once('#')?.0.to_owned()))
        .collect();
    locations.dedup();
    Ok(locations)
}

/// The report's lines for `locations`, from the week of `since` to the week of
/// `today`, by location, week and stage.
pub async fn read(
    state: &impl StateStore,
    locations: &[String],
    since: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<Line>, StateError> {
    let weeks: Vec<NaiveDate> =
        std::iter::successors(Some(week_of(since)), |w| w.checked_add_days(Days::new(7)))
            .take_while(|w| *w <= today)
            .collect();
    let mut lines = Vec::new();
    for location_id in locations {
        let keys: Vec<String> = weeks.iter().map(|w| key(location_id, *w)).collect();
        let mut kept = state.counts_of(&keys).await?;
        for (week, key) in weeks.iter().zip(&keys) {
            let by_event: ByEvent = parsed(kept.remove(key).unwrap_or_default());
            lines.extend(by_event.into_iter().map(|(stage, tally)| Line {
                location_id: location_id.clone(),
                week: *week,
                stage,
                tally,
            }));
        }
    }
    Ok(lines)
}

/// The share (%) of a line's events carrying `key`.
fn share(tally: &Tally, key: Key) -> u64 {
    100 - tally.lacking(key)
}

/// The report as a person reads it.
pub fn text(lines: &[Line]) -> String {
    if lines.is_empty() {
        return "nothing sent in this period\n".into();
    }
    let mut out = String::new();
    let mut last: Option<(&str, NaiveDate)> = None;
    for line in lines {
        if last != Some((&line.location_id, line.week)) {
            let _ = writeln!(
                out,
                "\nlocation {} · week of {}\n  {:<24} {:>8} {:>7} {:>8} {:>7} {:>6} {:>6}",
                line.location_id,
                line.week,
                "stage",
                "contacts",
                "events",
                "lead id",
                "e-mail",
                "phone",
                "score"
            );
            last = Some((&line.location_id, line.week));
        }
        let t = &line.tally;
        let test = if t.test > 0 {
            format!("  ({} test)", t.test)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<24} {:>8} {:>7} {:>6} % {:>5} % {:>4} % {:>6}{test}",
            line.stage,
            t.contacts,
            t.sent,
            share(t, Key::LeadId),
            share(t, Key::Email),
            share(t, Key::Phone),
            t.score()
        );
    }
    out
}

/// The report as CSV, one line a location, week and stage.
pub fn csv(lines: &[Line]) -> String {
    let mut out = String::from(
        "location,week,stage,contacts,events,test_events,lead_id_share,email_share,phone_share,average_score\n",
    );
    for line in lines {
        let t = &line.tally;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            quoted(&line.location_id),
            line.week,
            quoted(&line.stage),
            t.contacts,
            t.sent,
            t.test,
            share(t, Key::LeadId),
            share(t, Key::Email),
            share(t, Key::Phone),
            t.score()
        );
    }
    out
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn quoted(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Field;
    use crate::ports::state::MemoryState;

    fn event(name: &str, phone: bool) -> ServerEvent {
        let mut event = ServerEvent {
            event_name: name.into(),
            ..ServerEvent::default()
        };
        event.user_data.add(Field::Email, "a@example.com", None);
        if phone {
            event.user_data.add(Field::Phone, "+16505551212", None);
        }
        event
    }

    #[tokio::test]
    async fn a_weeks_stages_count_contacts_once_and_the_shares_of_their_events() {
        let state = MemoryState::default();
        let monday: DateTime<Utc> = "2026-11-30T09:00:00Z".parse().expect("time");
        let sunday: DateTime<Utc> = "2026-12-06T21:00:00Z".parse().expect("time");
        let lead = event("Lead", true);
        let bare = event("Lead", false);
        let won = event("Purchase, won", false);
        record(
            &state,
            "loc1",
            [(&lead, "c1"), (&bare, "c2")],
            false,
            monday,
        )
        .await
        .expect("recorded");
        // c1 again the same week, in another batch: one contact still.
        record(&state, "loc1", [(&lead, "c1"), (&won, "c1")], false, sunday)
            .await
            .expect("recorded");
        let next: DateTime<Utc> = "2026-12-07T08:00:00Z".parse().expect("time");
        record(&state, "loc1", [(&bare, "c3")], true, next)
            .await
            .expect("recorded");
        assert_eq!(locations(&state).await.expect("listed"), ["loc1"]);
        let lines = read(
            &state,
            &["loc1".into()],
            monday.date_naive(),
            next.date_naive(),
        )
        .await
        .expect("read");
        let found: Vec<(String, String, u64, u64)> = lines
            .iter()
            .map(|l| {
                (
                    l.week.to_string(),
                    l.stage.clone(),
                    l.tally.contacts,
                    l.tally.sent,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("2026-11-30".into(), "Lead".into(), 2, 3),
                ("2026-11-30".into(), "Purchase, won".into(), 1, 1),
                ("2026-12-07".into(), "Lead".into(), 1, 1),
            ]
        );
        assert_eq!(share(&lines[0].tally, Key::Phone), 67);
        let text = text(&lines);
        assert!(
            text.contains("location loc1 · week of 2026-11-30"),
            "{text}"
        );
        assert!(text.contains("(1 test)"), "{text}");
        let csv = csv(&lines);
        assert!(
            csv.contains("loc1,2026-11-30,Lead,2,3,0,0,100,67,3.0\n"),
            "{csv}"
        );
        assert!(
            csv.contains("loc1,2026-11-30,\"Purchase, won\",1,1,0,0,100,0,2.0\n"),
            "{csv}"
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        let day = |d: &str| d.parse::<NaiveDate>().expect("day");
        assert_eq!(week_of(day("2026-12-06")), day("2026-11-30"));
        assert_eq!(week_of(day("2026-11-30")), day("2026-11-30"));
    }
}
