//! `ghl-capi trace`: what happened to a contact, a webhook or an event: each
//! webhook received, each rule that fired or did not, each event built, Meta's
//! answers, retries, dead letters, audience rows and reconciliation's finds.
//! Locally from the store's audit journal; with `--aws`, from the functions'
//! CloudWatch logs through Logs Insights. Both hold ids, codes and hashes only.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_cloudwatchlogs::types::QueryStatus;
use chrono::{DateTime, Utc};
use ghl_capi_local::journal::{Entry, Subject};
use ghl_capi_local::store::Store;
use serde_json::{Map, Value};

use crate::Outcome;
use crate::serve::DEFAULT_DATA_DIR;

/// Lines one Logs Insights query returns at most.
const QUERY_LIMIT: u32 = 10_000;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["contact", "webhook", "event"])))]
pub struct Args {
    /// A GHL contact id: every webhook about it and what each became.
    #[arg(long)]
    contact: Option<String>,
    /// A webhook id (or a posted conversion's event id).
    #[arg(long)]
    webhook: Option<String>,
    /// An event id, as sent to Meta.
    #[arg(long)]
    event: Option<String>,
    /// With --contact: only this location's.
    #[arg(long)]
    location: Option<String>,
    /// How far back to look: a duration (`30d`, `6h`, `90m`), or a day
    /// (2026-11-01) or time (RFC 3339) as `backfill --since` takes them.
    #[arg(long, default_value = "30d", value_parser = since)]
    since: DateTime<Utc>,
    /// Print each entry as a JSON line.
    #[arg(long)]
    json: bool,
    /// The local store's directory (as given to `serve`).
    #[arg(long, env = "GHL_CAPI_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Read the deployed functions' logs instead, through CloudWatch Logs Insights
    /// (with the usual `AWS_*` settings).
    #[arg(long)]
    aws: bool,
    /// With --aws: the functions' log groups (the stack's outputs name them);
    /// repeat it, or separate them with commas.
    #[arg(
        long,
        env = "TRACE_LOG_GROUPS",
        value_delimiter = ',',
        required_if_eq("aws", "true")
    )]
    log_group: Vec<String>,
    /// With --aws: how long to wait for Logs Insights.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    query_timeout: Duration,
}

impl Args {
    fn subject(&self) -> anyhow::Result<Subject> {
        let id = |id: &str| -> anyhow::Result<String> {
            anyhow::ensure!(
                plain(id),
                "{id:?} is not an id (letters, digits and -_.: only)"
            );
            Ok(id.to_owned())
        };
        Ok(match (&self.contact, &self.webhook, &self.event) {
            (Some(contact), _, _) => Subject::Contact {
                contact_id: id(contact)?,
                location_id: self.location.as_deref().map(id).transpose()?,
            },
            (_, Some(webhook), _) => Subject::Webhook(id(webhook)?),
            (_, _, Some(event)) => Subject::Event(id(event)?),
            _ => anyhow::bail!("name a --contact, a --webhook or an --event"),
        })
    }
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let subject = args.subject()?;
    let (now, since) = (Utc::now(), args.since);
    let entries = if args.aws {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(insights(args, &subject, since, now))?
    } else {
        let path = args.data_dir.join("store.db");
        anyhow::ensure!(
            path.exists(),
            "no local store at {}; give --data-dir as `serve` has it, or --aws",
            path.display()
        );
        Store::open(&path)?.journal_of(&subject, since.timestamp_millis())?
    };
    let journey = subject.journey(entries);
    if !args.json {
        out!("{}", heading(&subject, &journey, since))?;
    }
    for entry in &journey {
        if args.json {
            out!("{}", as_json(entry))?;
        } else {
            out!("{}", line(entry))?;
        }
    }
    Ok(Outcome::Done)
}

/// A duration back from now, or a day or time.
pub(crate) fn since(text: &str) -> Result<DateTime<Utc>, String> {
    match humantime::parse_duration(text) {
        Ok(ago) => chrono::Duration::from_std(ago)
            .map(|ago| Utc::now() - ago)
            .map_err(|_| format!("{text} is too far back")),
        Err(_) => {
            crate::backfill::since(text).map_err(|e| format!("{e}, nor a duration (30d, 6h)"))
        }
    }
}

fn heading(subject: &Subject, journey: &[Entry], since: DateTime<Utc>) -> String {
    let what = match subject {
        Subject::Contact {
            contact_id,
            location_id: Some(location),
        } => format!("contact {contact_id} of location {location}"),
        Subject::Contact { contact_id, .. } => format!("contact {contact_id}"),
        Subject::Webhook(id) => format!("webhook {id}"),
        Subject::Event(id) => format!("event {id}"),
    };
    let mut webhooks: Vec<&str> = journey.iter().filter_map(Entry::webhook_id).collect();
    webhooks.sort_unstable();
    webhooks.dedup();
    let mut events: Vec<&str> = journey.iter().filter_map(|e| e.text("event_id")).collect();
    events.sort_unstable();
    events.dedup();
    match journey.len() {
        0 => format!(
            "{what}: nothing since {} (is it the right id, and --since long enough?)",
            stamp(since.timestamp_millis())
        ),
        n => format!(
            "{what} since {}: {n} entries, {}, {}",
            stamp(since.timestamp_millis()),
            count(webhooks.len(), "webhook"),
            count(events.len(), "event")
        ),
    }
}

fn count(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn stamp(at_ms: i64) -> String {
    DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

/// One entry: its time, what happened, and its fields (ids first).
fn line(entry: &Entry) -> String {
    let mut text = format!("{}  {}", stamp(entry.at_ms), entry.message);
    if entry.level != "INFO" {
        text = format!("{text} [{}]", entry.level.to_lowercase());
    }
    for (key, value) in &entry.fields {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !value.is_empty() {
            text.push_str(&format!("  {key}={value}"));
        }
    }
    text
}

fn as_json(entry: &Entry) -> Value {
    let mut object = Map::new();
    object.insert("at".into(), Value::from(stamp(entry.at_ms)));
    object.insert("level".into(), Value::from(entry.level));
    object.insert("message".into(), Value::from(entry.message.clone()));
    object.extend(entry.fields.clone());
    Value::Object(object)
}

/// Whether `id` may go into a query as it is: GHL's ids and ours are letters,
/// digits and `-_.:`, which need no escaping.
fn plain(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// `[ "a", "b" ]` for a query, of the plain ids of `ids`. The rest were read back
/// from the logs (a posted conversion's `eventId` is its caller's choice): never
/// put into a query's text, they are left out, and said so on stderr.
fn listed(ids: &[String]) -> String {
    let (quoted, odd): (Vec<&String>, Vec<&String>) = ids.iter().partition(|id| plain(id));
    if !odd.is_empty() {
        eprintln!(
            "trace: {} id(s) read back from the logs are not plain ids (letters, digits, -_.:) \
             and were left out of the second query",
            odd.len()
        );
    }
    let quoted: Vec<String> = quoted.iter().map(|id| format!("\"{id}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The Logs Insights query of the lines naming `subject` (`fields.` is where the
/// functions' JSON lines keep their fields).
fn first_query(subject: &Subject) -> Option<String> {
    let filter = match subject {
        Subject::Contact { contact_id, .. } => format!("fields.contact_id = \"{contact_id}\""),
        Subject::Event(id) => format!("fields.event_id = \"{id}\""),
        Subject::Webhook(_) => return None,
    };
    Some(format!(
        "fields @timestamp, @message | filter {filter} | limit {QUERY_LIMIT}"
    ))
}

/// The query of every line of `webhooks`, and those naming `subject`.
fn journey_query(subject: &Subject, webhooks: &[String]) -> String {
    let ids = listed(webhooks);
    let named = match subject {
        Subject::Contact { contact_id, .. } => format!("fields.contact_id = \"{contact_id}\" or "),
        Subject::Event(id) => format!("fields.event_id = \"{id}\" or "),
        Subject::Webhook(_) => String::new(),
    };
    format!(
        "fields @timestamp, @message | filter {named}fields.webhook_id in {ids} or fields.source in {ids} \
         or fields.job in {ids} | sort @timestamp asc | limit {QUERY_LIMIT}"
    )
}

/// The subject's lines from the functions' logs: one query finds the webhooks
/// naming it, a second every line of theirs.
async fn insights(
    args: &Args,
    subject: &Subject,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Entry>> {
    let sdk = ghl_capi_aws::config::sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let run = |query: String| run_query(&logs, args, query, (since, now));
    let mut webhooks = match subject {
        Subject::Webhook(id) => vec![id.clone()],
        _ => Vec::new(),
    };
    let mut entries = Vec::new();
    if let Some(query) = first_query(subject) {
        let named = run(query).await?;
        webhooks.extend(
            named
                .iter()
                .filter_map(|e| e.webhook_id().map(str::to_owned)),
        );
        webhooks.sort();
        webhooks.dedup();
        entries.extend(named);
    }
    if !webhooks.is_empty() {
        entries.extend(run(journey_query(subject, &webhooks)).await?);
    }
    // A line both queries returned is kept once.
    entries.sort_by_cached_key(|e| {
        (
            e.at_ms,
            e.message.clone(),
            Value::Object(e.fields.clone()).to_string(),
        )
    });
    entries.dedup();
    Ok(entries)
}

async fn run_query(
    logs: &aws_sdk_cloudwatchlogs::Client,
    args: &Args,
    query: String,
    (since, now): (DateTime<Utc>, DateTime<Utc>),
) -> anyhow::Result<Vec<Entry>> {
    let started = logs
        .start_query()
        .set_log_group_names(Some(args.log_group.clone()))
        .start_time(since.timestamp())
        .end_time(now.timestamp() + 1)
        .query_string(query)
        .limit(QUERY_LIMIT as i32)
        .send()
        .await
        .context("Logs Insights refused the query (logs:StartQuery on the log groups)")?;
    let id = started.query_id().unwrap_or_default().to_owned();
    let deadline = tokio::time::Instant::now() + args.query_timeout;
    loop {
        let results = logs
            .get_query_results()
            .query_id(&id)
            .send()
            .await
            .context("cannot read the query's results (logs:GetQueryResults)")?;
        match results.status() {
            Some(QueryStatus::Complete) => {
                return Ok(results
                    .results()
                    .iter()
                    .filter_map(|row| {
                        let field = |name: &str| {
                            row.iter()
                                .find(|f| f.field() == Some(name))
                                .and_then(|f| f.value())
                        };
                        let at = insights_time(field("@timestamp")?)?;
                        let line: Value = serde_json::from_str(field("@message")?).ok()?;
                        Entry::from_log_line(&line, at)
                    })
                    .collect());
            }
            Some(QueryStatus::Failed | QueryStatus::Cancelled | QueryStatus::Timeout) => {
                anyhow::bail!("the Logs Insights query ended {:?}", results.status())
            }
            _ if tokio::time::Instant::now() >= deadline => {
                let _ = logs.stop_query().query_id(&id).send().await;
                anyhow::bail!(
                    "Logs Insights did not answer within {}s (--query-timeout)",
                    args.query_timeout.as_secs()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// A result's `@timestamp`: Logs Insights writes `2026-12-02 01:20:01.123`;
/// epoch milliseconds are taken too.
fn insights_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_the_subject_and_its_webhooks() {
        let contact = Subject::Contact {
            contact_id: "c1".into(),
            location_id: None,
        };
        assert_eq!(
            first_query(&contact).as_deref(),
            Some("fields @timestamp, @message | filter fields.contact_id = \"c1\" | limit 10000")
        );
        let journey = journey_query(&contact, &["w1".into(), "w2".into()]);
        assert!(
            journey.contains("fields.contact_id = \"c1\" or fields.webhook_id in [\"w1\", \"w2\"]"),
            "{journey}"
        );
        assert!(
            journey.contains("fields.source in [\"w1\", \"w2\"]"),
            "{journey}"
        );
        assert!(first_query(&Subject::Webhook("w1".into())).is_none());
        // An id read back from the logs that a caller chose cannot change the query.
        let injected = journey_query(
            &Subject::Webhook("w1".into()),
            &[
                "w1".into(),
                r#"x" or 1=1 | display @message | limit 1 #"#.into(),
            ],
        );
        assert!(
            !injected.contains("1=1") && injected.contains(r#"["w1"]"#),
            "{injected}"
        );
    }

    #[test]
    fn since_is_a_duration_back_or_a_day() {
        let day_ago = since("1d").expect("a duration");
        let expected = Utc::now() - chrono::Duration::days(1);
        assert!((day_ago - expected).num_seconds().abs() < 5);
        assert_eq!(
            since("2026-11-01").expect("a day").to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        let wrong = since("last week").expect_err("neither");
        assert!(wrong.contains("nor a duration"), "{wrong}");
    }

    #[test]
    fn insights_times_read_both_ways() {
        assert_eq!(insights_time("1764638401123"), Some(1_764_638_401_123));
        assert_eq!(
            insights_time("2025-12-02 01:20:01.123"),
            Some(1_764_638_401_123)
        );
    }
}
