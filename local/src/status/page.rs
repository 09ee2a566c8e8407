//! The status page: one HTML document, server-rendered, with its style inline and
//! its charts as SVG; no script, no external asset, readable on a phone. Every
//! text from the store is escaped.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{ByName, Calls, Letter, Series, Status, Window, causes};

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;overflow-wrap:anywhere;margin:0 auto;max-width:60rem;padding:1rem;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #eaeef2}
th{font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(17rem,1fr));gap:1rem;margin:.8rem 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.6rem}.bad{color:#b42318;font-weight:600}.ok{color:#1a7f37}
svg{width:100%;height:auto}figure{margin:0}small{color:#57606a}";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn total(rows: &ByName) -> Window {
    rows.iter().fold(Window::default(), |sum, (_, w)| Window {
        hour: sum.hour + w.hour,
        day: sum.day + w.day,
    })
}

/// A table of `rows` with hour and day columns.
fn table(out: &mut String, title: &str, head: &str, rows: &ByName) {
    let _ = write!(
        out,
        "<h2>{title}</h2><table><tr><th>{head}</th><th class=n>last hour</th><th class=n>last day</th></tr>"
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=3><small>none in the last day</small></td></tr>");
    }
    for (name, w) in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            escape(name),
            w.hour,
            w.day
        );
    }
    out.push_str("</table>");
}

/// A bar chart of `bars`, labelled with its total and the span's start and end.
fn chart(out: &mut String, title: &str, bars: &[u64], span: (&str, &str)) {
    let max = bars.iter().copied().max().unwrap_or(0).max(1);
    let width = 240.0 / bars.len().max(1) as f64;
    let sum: u64 = bars.iter().sum();
    let _ = write!(
        out,
        "<figure class=card><figcaption>{title}: <b>{sum}</b></figcaption>\
         <svg viewBox=\"0 0 240 70\" role=img aria-label=\"{title}: {sum}\">"
    );
    for (i, n) in bars.iter().enumerate() {
        let h = 56.0 * *n as f64 / max as f64;
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#0969da\"><title>{n}</title></rect>",
            i as f64 * width + 0.5,
            58.0 - h,
            (width - 1.0).max(0.5),
        );
    }
    let _ = write!(
        out,
        "<line x1=0 y1=58.5 x2=240 y2=58.5 stroke=\"#8c959f\"/>\
         <text x=0 y=69 font-size=8 fill=\"#57606a\">{}</text>\
         <text x=240 y=69 font-size=8 fill=\"#57606a\" text-anchor=end>{}</text></svg></figure>",
        span.0, span.1
    );
}

fn charts(out: &mut String, title: &str, series: &Series) {
    let _ = write!(out, "<div class=grid>");
    chart(
        out,
        &format!("{title}, last hour"),
        &series.hour,
        ("−60 min", "now"),
    );
    chart(
        out,
        &format!("{title}, last day"),
        &series.day,
        ("−24 h", "now"),
    );
    out.push_str("</div>");
}

fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v} ms"))
}

fn seconds(value: Option<u64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v} s"))
}

fn age(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn calls(out: &mut String, name: &str, calls: &Calls) {
    let rate = match calls.count {
        0 => "–".to_owned(),
        n => format!("{:.1} %", 100.0 * calls.failed as f64 / n as f64),
    };
    let class = if calls.failed > 0 { "bad" } else { "ok" };
    let _ = write!(
        out,
        "<tr><td>{name}</td><td class=n>{}</td><td class=\"n {class}\">{rate}</td><td class=n>{}</td><td class=n>{}</td></tr>",
        calls.count,
        ms(calls.p50_ms),
        ms(calls.p99_ms)
    );
}

fn letters(out: &mut String, letters: &[Letter], now: i64) {
    let _ = write!(out, "<h2>Dead letters: {}</h2>", letters.len());
    if letters.is_empty() {
        out.push_str("<p class=ok>None.</p>");
        return;
    }
    out.push_str("<table><tr><th>top causes</th><th class=n>letters</th></tr>");
    for (code, n) in causes(letters).into_iter().take(5) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=n>{n}</td></tr>",
            escape(code)
        );
    }
    out.push_str(
        "</table><table><tr><th>letter</th><th>cause</th><th>source</th><th class=n>age</th></tr>",
    );
    for letter in letters.iter().take(50) {
        let _ = write!(
            out,
            "<tr><td><a href=\"/status/dead/{id}\">#{id}</a></td><td>{}</td><td>{}</td><td class=n>{}</td></tr>",
            escape(&letter.code),
            escape(&letter.source),
            age(now - letter.at_ms),
            id = letter.id,
        );
    }
    if letters.len() > 50 {
        let _ = write!(
            out,
            "<tr><td colspan=4><small>and {} more: ghl-capi dlq list</small></td></tr>",
            letters.len() - 50
        );
    }
    out.push_str("</table>");
}

/// The whole page.
/// The mapping version running, since when, and the last one refused with why.
fn mapping(out: &mut String, mapping: Option<&super::MappingState>) {
    let Some(m) = mapping else {
        return;
    };
    let _ = write!(
        out,
        "<p id=mapping>Mapping version <b>{}</b>, running since {}</p>",
        escape(&m.version),
        when(m.since)
    );
    if let Some((version, why)) = &m.refused {
        let _ = write!(
            out,
            "<p id=mapping-refused class=bad>Version <b>{}</b> was not taken, so the one above still runs: {}</p>",
            escape(version),
            escape(why)
        );
    }
}

pub fn render(status: &Status) -> String {
    let now = status.now.timestamp_millis();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>ghl-capi status</title><style>{STYLE}</style></head><body>\
         <h1>ghl-capi status</h1><p><small>at {} · refresh the page for new figures</small></p>",
        when(status.now)
    );
    let _ = write!(
        out,
        "<div class=grid><div class=card>Webhooks accepted, last day<br><b id=accepted>{}</b>\
         <small> · refused <b id=refused>{}</b></small></div>\
         <div class=card>Events sent to Meta, last day<br><b id=sent>{}</b></div>\
         <div class=card>Dead letters waiting<br><b id=dead class={}>{}</b></div>\
         <div class=card>End-to-end lag, last day<br>p50 <b>{}</b> · p99 <b>{}</b></div></div>",
        status.accepted.day,
        status.refused.day,
        total(&status.sent).day,
        if status.letters.is_empty() {
            "ok"
        } else {
            "bad"
        },
        status.letters.len(),
        seconds(status.lag_p50_s),
        seconds(status.lag_p99_s),
    );
    mapping(&mut out, status.mapping.as_ref());
    charts(&mut out, "Webhooks accepted", &status.accepted_series);
    charts(&mut out, "Events sent", &status.sent_series);
    charts(&mut out, "Dead-lettered", &status.dead_series);
    table(&mut out, "Webhooks by outcome", "outcome", &status.webhooks);
    table(&mut out, "Events built", "event", &status.built);
    table(&mut out, "Events sent, by pixel", "pixel", &status.sent);
    table(
        &mut out,
        "Dead-lettered, by reason",
        "reason",
        &status.dead_lettered,
    );
    table(
        &mut out,
        "Audience rows",
        "operation",
        &status.audience_rows,
    );

    super::quality::render(&mut out, &status.quality);
    super::quality::render_report(&mut out, &status.report);

    out.push_str(
        "<h2>Partners, last hour</h2><table><tr><th>API</th><th class=n>calls</th>\
         <th class=n>failed</th><th class=n>p50</th><th class=n>p99</th></tr>",
    );
    calls(&mut out, "Meta Graph API", &status.graph);
    calls(&mut out, "GHL API", &status.ghl);
    out.push_str("</table>");

    out.push_str("<h2>Queues</h2><table><tr><th>queue</th><th class=n>messages</th><th class=n>oldest</th></tr>");
    for backlog in &status.backlog {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            backlog.queue,
            backlog.depth,
            backlog.oldest_ms.map_or_else(|| "–".to_owned(), age),
        );
    }
    out.push_str("</table>");

    letters(&mut out, &status.letters, now);

    out.push_str("<h2>Circuit breakers</h2>");
    if status.breakers.is_empty() {
        out.push_str("<p class=ok>All closed: every pixel and location is served.</p>");
    } else {
        out.push_str("<table><tr><th>breaker</th><th>state</th><th>last failure</th><th class=n>next try</th></tr>");
        for (name, breaker) in &status.breakers {
            let (state, class) = if Status::open(breaker) {
                ("open: work held", "bad")
            } else {
                ("closed, failing", "")
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"{class}\">{state} ({} failures)</td><td>{}</td><td class=n>{}</td></tr>",
                escape(&name.replace('#', " ")),
                breaker.failures,
                escape(&breaker.code),
                age((breaker.next_probe.timestamp_millis() - now).max(0)),
            );
        }
        out.push_str("</table>");
    }

    out.push_str(
        "<h2>Locations</h2><table><tr><th>location</th><th>baseline</th>\
         <th>last reconciliation</th><th class=n>missed, last day</th></tr>",
    );
    if status.locations.is_empty() {
        out.push_str("<tr><td colspan=4><small>none: no GHL token, and no pixel names a location</small></td></tr>");
    }
    for location in &status.locations {
        let seeded = match &location.seeded {
            Some(seeded) => format!("<span class=ok>seeded</span> {}", when(seeded.at)),
            None => "<span class=bad>not seeded</span>".to_owned(),
        };
        let run = location.last_run.as_ref().map_or_else(
            || "never".to_owned(),
            |run| format!("{} ({} listed)", when(run.at), run.scanned),
        );
        let class = if location.missed_day > 0 {
            "n bad"
        } else {
            "n"
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{seeded}</td><td>{run}</td><td class=\"{class}\">{}</td></tr>",
            escape(&location.location_id),
            location.missed_day
        );
    }
    out.push_str("</table><p><small>Prometheus figures: <a href=\"/metrics\">/metrics</a>. \
                   Follow a contact: <code>ghl-capi trace --contact ID</code>.</small></p></body></html>");
    out
}

/// One dead letter's page: its cause and ids, never the message it holds.
pub fn letter(letter: &ghl_capi::jobs::DeadLetter, id: i64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>dead letter #{id}</title><style>{STYLE}</style></head><body>\
         <p><a href=\"/status\">← status</a></p><h1>Dead letter #{id}</h1><table>"
    );
    let history = &letter.history;
    let rows = [
        ("cause", letter.code.clone()),
        ("reason", letter.reason.clone()),
        ("source", letter.source.clone()),
        (
            "stage",
            letter
                .stage
                .map(|s| s.name().to_owned())
                .unwrap_or_default(),
        ),
        ("triggers", letter.triggers.join(" ")),
        ("rule", letter.rule.clone().unwrap_or_default()),
        ("event id", letter.event_id.clone().unwrap_or_default()),
        ("at", letter.at.map(when).unwrap_or_default()),
        ("attempts", history.attempts.to_string()),
    ];
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    let _ = write!(
        out,
        "</table><p><small>Once its cause is fixed: <code>ghl-capi dlq redrive</code>. \
         Its journey: <code>ghl-capi trace --webhook {}</code></small></p></body></html>",
        escape(&letter.source)
    );
    out
}
