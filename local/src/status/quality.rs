//! The status page's match quality: each pixel's events of the last week with
//! their identifier coverage, from the counters dispatch keeps
//! (`ghl_capi::quality`), the two gaps that cost most with what would fill them,
//! and its Conversion Leads readiness over the month.

use std::fmt::Write;

use chrono::{DateTime, Days, Utc};
use ghl_capi::capi::score::Key;
use ghl_capi::quality::readiness::{self, Asked, Check};
use ghl_capi::quality::report::{self, Line};
use ghl_capi::quality::{self, ByEvent, Tally, advice};

use super::page::escape;
use crate::ports::LocalState;
use crate::store::Store;

/// The days the section sums.
pub const DAYS: u64 = 7;

/// A pixel of the mapping `serve` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub name: String,
    pub dataset_id: String,
    /// Whether it sends with a test event code.
    pub test: bool,
}

/// One pixel's last week, and its Conversion Leads readiness over the month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelQuality {
    pub dataset_id: String,
    /// As the mapping names it, when `serve` knows it.
    pub pixel: Option<String>,
    pub by_event: ByEvent,
    pub readiness: Vec<Check>,
}

/// Every pixel with counters, and every pixel `serve` serves, with the last
/// [`DAYS`] days summed by event name and its readiness judged on the month.
pub async fn read(
    store: &Store,
    pixels: &[Served],
    now: DateTime<Utc>,
) -> Result<Vec<PixelQuality>, super::StatusError> {
    let today = now.date_naive();
    let week = today.checked_sub_days(Days::new(DAYS - 1)).unwrap_or(today);
    let month = (today.checked_sub_days(Days::new(readiness::MONTH_DAYS - 1))).unwrap_or(today);
    let state = LocalState(store.clone());
    let mut datasets = quality::datasets(&state).await?;
    datasets.extend(pixels.iter().map(|p| p.dataset_id.clone()));
    datasets.sort();
    datasets.dedup();
    let mut found = Vec::new();
    for dataset_id in datasets {
        let days = quality::read(&state, &dataset_id, month, today).await?;
        let mut by_event = ByEvent::new();
        for (_, day) in days.iter().filter(|(day, _)| *day >= week) {
            for (name, tally) in day {
                by_event.entry(name.clone()).or_default().add(tally);
            }
        }
        let served = pixels.iter().find(|p| p.dataset_id == dataset_id);
        let asked = Asked {
            test_pixel: served.is_some_and(|p| p.test),
            ..Asked::default()
        };
        found.push(PixelQuality {
            readiness: readiness::assess(&days, today, &asked),
            pixel: served.map(|p| p.name.clone()),
            dataset_id,
            by_event,
        });
    }
    Ok(found)
}

/// The share of `tally`'s events that carry `key`, as a cell.
fn carried(tally: &Tally, key: Key) -> String {
    format!("<td class=n>{} %</td>", 100 - tally.lacking(key))
}

pub fn render(out: &mut String, pixels: &[PixelQuality]) {
    out.push_str("<h2 id=quality>Match quality, last 7 days</h2>");
    out.push_str(
        "<p><small>Identifier coverage of the events Meta took, 0–10 (Meta scores web events \
         only: this is the one score CRM events get). <code>ghl-capi verify</code> adds Meta's \
         own figures.</small></p>",
    );
    let any = pixels.iter().any(|p| !p.by_event.is_empty());
    if !any {
        out.push_str("<p>No events sent in the last 7 days.</p>");
        return;
    }
    out.push_str(
        "<table><tr><th>pixel</th><th>event</th><th class=n>events</th><th class=n>score</th>\
         <th class=n>lead id</th><th class=n>click id</th><th class=n>e-mail</th><th class=n>phone</th></tr>",
    );
    let mut advice_lines = Vec::new();
    for pixel in pixels {
        let name = pixel.pixel.as_deref().map_or_else(
            || escape(&pixel.dataset_id),
            |n| format!("{} <small>{}</small>", escape(n), escape(&pixel.dataset_id)),
        );
        for (event, tally) in &pixel.by_event {
            let _ = write!(
                out,
                "<tr><td>{name}</td><td>{}</td><td class=n>{}</td><td class=n><b>{}</b></td>{}{}{}{}</tr>",
                escape(event),
                tally.sent,
                tally.score(),
                carried(tally, Key::LeadId),
                carried(tally, Key::ClickId),
                carried(tally, Key::Email),
                carried(tally, Key::Phone),
            );
            let lead_ads = advice::uses_lead_ads(&pixel.by_event);
            for (key, share) in advice::worth_advice(tally, lead_ads).into_iter().take(2) {
                advice_lines.push(format!(
                    "<li>{share} % of {} events have no {}: {}</li>",
                    escape(event),
                    key.name(),
                    escape(advice::fill(key))
                ));
            }
        }
    }
    out.push_str("</table>");
    if !advice_lines.is_empty() {
        let _ = write!(out, "<ul id=quality-advice>{}</ul>", advice_lines.join(""));
    }
    for pixel in pixels.iter().filter(|p| !p.by_event.is_empty()) {
        ready(out, pixel);
    }
}

/// A pixel's Conversion Leads readiness, as `verify --readiness` tells it.
fn ready(out: &mut String, pixel: &PixelQuality) {
    let name = pixel.pixel.as_deref().unwrap_or(&pixel.dataset_id);
    let _ = write!(
        out,
        "<h3>Conversion Leads readiness: {}</h3><table class=ready><tr><th>requirement</th><th></th><th>last 30 days</th></tr>",
        escape(name)
    );
    for check in &pixel.readiness {
        let (said, class) = match check.met {
            Some(true) => ("met", "ok"),
            Some(false) => ("not met", "bad"),
            None => ("unknown", ""),
        };
        let change = if check.change.is_empty() {
            String::new()
        } else {
            format!("<br><small>{}</small>", escape(&check.change))
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{said}</td><td>{}{change}</td></tr>",
            check.requirement,
            escape(&check.figure)
        );
    }
    out.push_str("</table>");
}

/// The weeks the report section shows.
pub const REPORT_WEEKS: u64 = 4;

/// The report's lines of the last [`REPORT_WEEKS`] weeks, every location.
pub async fn report(store: &Store, now: DateTime<Utc>) -> Result<Vec<Line>, super::StatusError> {
    let state = LocalState(store.clone());
    let today = now.date_naive();
    let since = today
        .checked_sub_days(Days::new(7 * (REPORT_WEEKS - 1)))
        .unwrap_or(today);
    let locations = report::locations(&state).await?;
    Ok(report::read(&state, &locations, since, today).await?)
}

/// The report, as `ghl-capi report` prints it, newest week first.
pub fn render_report(out: &mut String, lines: &[Line]) {
    out.push_str("<h2 id=report>Report, last 4 weeks</h2>");
    if lines.is_empty() {
        out.push_str("<p>Nothing sent in the last 4 weeks.</p>");
        return;
    }
    out.push_str(
        "<table><tr><th>week of</th><th>location</th><th>stage</th><th class=n>contacts</th>\
         <th class=n>events</th><th class=n>lead id</th><th class=n>e-mail</th><th class=n>phone</th><th class=n>score</th></tr>",
    );
    let mut newest_first: Vec<&Line> = lines.iter().collect();
    newest_first.sort_by_key(|line| std::cmp::Reverse(line.week));
    for line in newest_first {
        let t = &line.tally;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td>{}{}{}<td class=n>{}</td></tr>",
            line.week,
            escape(&line.location_id),
            escape(&line.stage),
            t.contacts,
            t.sent,
            carried(t, Key::LeadId),
            carried(t, Key::Email),
            carried(t, Key::Phone),
            t.score()
        );
    }
    out.push_str("</table><p><small>As CSV: <code>ghl-capi report --csv</code>.</small></p>");
}
