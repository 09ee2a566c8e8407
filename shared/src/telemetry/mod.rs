//! The metrics the pipeline records, through the `metrics` facade. They cost nothing
//! until a process installs a recorder: the Lambda functions install one that writes
//! CloudWatch Embedded Metric Format. The names are those the template's alarms and
//! dashboard read. Dimensions are bounded sets (outcomes, reason codes, statuses,
//! event names) and, unless only totals are kept ([`Detail`]), the mapping's pixels,
//! audiences and workflows and GHL's locations: a series each.

mod detail;

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

pub use detail::{Detail, keep_apart};
use detail::{dimensions, each};

/// The log target of audit detail, logged at DEBUG: each GHL call that answered,
/// each rule that watches another tag or entity than the one that changed. The
/// functions' `info` leaves it out (a few hundred bytes an event, in CloudWatch
/// Logs' bill); local mode's journal keeps it whatever the level, for `trace` and
/// the status page; `RUST_LOG=info,ghl_capi::detail=debug` prints it.
pub const DETAIL: &str = "ghl_capi::detail";

/// Intake requests, by `Outcome` (`accepted`, `ignored`, or the rejection's code:
/// `bad_signature`, `no_timestamp`, `enqueue_failed`, …).
pub const REQUESTS: &str = "Requests";
/// Intake requests answered with anything but `2xx` (GHL pauses a URL whose
/// deliveries fail too often): their share of the intake's invocations (Lambda's
/// count, free; a total of ours would cost every webhook a metrics line) is what
/// the alarm watches.
pub const REFUSED: &str = "Refused";
/// The intake handler's own time, by `Outcome`.
pub const HANDLER_TIME: &str = "HandlerTime";
/// Events the mapping built and enrichment queued for Meta, by `EventName`.
pub const EVENTS_BUILT: &str = "EventsBuilt";
/// Events Meta acknowledged: each event of a request it accepted.
pub const EVENTS_SENT: &str = "EventsSent";
/// Events Meta acknowledged, and the sum of their identifier coverage scores in
/// hundredths of a point, by `Pixel` and `EventName`: their ratio over a period,
/// divided by 100, is the average score (the dashboard's match quality widget).
pub const SCORED_EVENTS: &str = "ScoredEvents";
pub const SCORE_POINTS: &str = "ScorePoints";
/// A dispatch batch's quality counters that could not be written (the events were
/// sent; only the record of their coverage is short).
pub const TALLIES_LOST: &str = "TalliesLost";
/// Messages sent to a dead-letter queue, by `Reason` (the dead letter's code).
pub const DEAD_LETTERED: &str = "DeadLettered";
/// Per pixel in a dispatch batch, how long its oldest delivered event took from the
/// change in GHL to Meta's acknowledgement. One value per batch, not per event: the
/// collector holds at most 100 values between flushes, and a batch has up to 1,000.
pub const END_TO_END_LAG: &str = "EndToEndLag";
/// Graph API calls, by `Status` (HTTP status, or `unreachable`).
pub const CAPI_REQUESTS: &str = "GraphRequests";
/// Graph API calls that failed: unreachable or not answered with 2xx.
pub const CAPI_FAILURES: &str = "GraphFailures";
pub const CAPI_LATENCY: &str = "GraphLatency";
/// Graph API answers that flag the API version (the `X-Ad-Api-Version-Warning`
/// header, error 2635): the alarm watches it, so a sunset is met before it bites.
pub const GRAPH_VERSION_WARNINGS: &str = "GraphVersionWarnings";
/// GHL API calls, by `Status` (HTTP status, or `unreachable`).
pub const GHL_REQUESTS: &str = "GhlRequests";
/// GHL token trouble: an API call answered 401, or a refresh refused.
pub const GHL_UNAUTHORIZED: &str = "GhlUnauthorized";
pub const GHL_LATENCY: &str = "GhlLatency";
/// GHL's `X-RateLimit-Remaining` after each call: the headroom in its window.
pub const GHL_RATE_LIMIT_REMAINING: &str = "GhlRateLimitRemaining";
/// GHL calls made, by `Use` (`enrichment`, `names`, `write_back`, `reconcile`,
/// `backfill`, `command`): who spends each location's budget.
pub const GHL_BUDGET_SPENT: &str = "GhlBudgetSpent";
/// GHL calls held back for a location's budget, by `Use`: kept for real-time
/// enrichment, or enrichment past its share ([`crate::ghl::budget`]).
pub const GHL_BUDGET_WAITS: &str = "GhlBudgetWaits";
/// Contact reads served by an earlier read of the same contact (no GHL call).
pub const GHL_READS_SAVED: &str = "GhlReadsSaved";
/// GHL token refreshes, by `Result` (`refreshed`; `refused`: a location's grant
/// is dead; `app_refused`: the app's credentials; `refused_unknown`).
pub const TOKEN_REFRESHES: &str = "TokenRefreshes";
/// Records in an SQS batch, by `Function`.
pub const RECORDS: &str = "Records";
/// Records of a batch handed back to SQS for a retry, by `Function`.
pub const RETRIED: &str = "Retried";
/// Each record handed back for a retry, by `Stage` and `Reason` (a bounded code:
/// `ghl_unavailable`, `meta_unavailable`, `state_store_failed`, …).
pub const RETRY_REASONS: &str = "RetryReasons";
/// A partner's circuit breaker opened (a pixel's or a location's work is held), by
/// `Partner` (`meta` or `ghl`).
pub const PARTNER_PAUSED: &str = "PartnerPaused";
/// A contact seen for the first time by a tag webhook: its tags became the
/// baseline, and no tag rule fired.
pub const TAG_BASELINES: &str = "TagBaselines";
/// Work dropped on purpose before any partner call, by `Reason` (`no_pixel`: no
/// pixel serves the location).
pub const SKIPPED: &str = "Skipped";

/// Writes of delivery back into GHL, by `Kind` (`tag`, `fields`, `note`, `task`;
/// `any` for the job as a whole) and `Outcome` (`written`; `there_already`: a
/// redelivery found it made; `deferred`: waiting for GHL's budget; `held`: GHL
/// failed, retried; `refused`: GHL refused it, lettered; `no_contact`;
/// `lost`: not queued; `echo_unreadable`).
pub const WRITE_BACKS: &str = "WriteBacks";

/// Workflow calls enrichment handled, by `Workflow` (as the mapping names it, else
/// `other`) and `Outcome` (`fired`: a rule made an event; `no_rule`: none did).
pub const WORKFLOW_CALLS: &str = "WorkflowCalls";

/// Custom Audience rows, by `Audience` (the mapping's name) and `Outcome`
/// (`added`, `removed`; `invalid`: Meta took them but could not use them;
/// `refused`: dead-lettered with Meta's reason).
pub const AUDIENCE_ROWS: &str = "AudienceRows";
/// Audience changes Meta refused for good (a flagged or missing audience, …): in
/// all (the alarm on audience errors watches it), and by `Audience` and `Reason`.
pub const AUDIENCE_ERRORS: &str = "AudienceErrors";
/// Scheduled audience mirrors (whole lists replaced), by `Audience` and `Outcome`
/// (`replaced`, `failed`), and the failures in all (the alarm watches them).
pub const AUDIENCE_MIRRORS: &str = "AudienceMirrors";
pub const AUDIENCE_MIRROR_FAILURES: &str = "AudienceMirrorFailures";
/// Members not sent, by `Reason` (`no_usable_key`: no e-mail or phone).
pub const AUDIENCE_SKIPPED: &str = "AudienceSkipped";

/// Mapping versions a running stage looked at, by `Outcome` (`taken`: it runs
/// now; `refused`: it did not pass the checks and the running one stayed;
/// `unreadable`: the store could not be read), and those refused in all (the
/// alarm watches them).
pub const MAPPING_VERSIONS: &str = "MappingVersions";
pub const MAPPING_REFUSALS: &str = "MappingRefusals";

/// Contacts reconciliation listed, in all. Not by `Location`: a series per location
/// would cost $0.30 a month for each one active in every hour, and the
/// `reconciled` log line and `verify` already give each location's count.
pub const CONTACTS_SCANNED: &str = "ContactsScanned";
/// Changes reconciliation found that no webhook delivered (a tag added or removed,
/// a contact created), in all (the alarm watches it) and by `Location`: above
/// zero, GHL is not delivering (a paused URL, a missing subscription).
pub const MISSED_CHANGES: &str = "MissedChanges";

/// Reconciliation runs of a location that failed (it runs again from its watermark).
pub const RECONCILE_FAILURES: &str = "ReconcileFailures";
/// A location's baseline taken, its listing complete (from then on it counts as
/// seeded), in all and by `Location`.
pub const BASELINES_TAKEN: &str = "BaselinesTaken";

/// How a metric is recorded: counted, or a distribution in a unit.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Histogram(Unit),
}

/// Every metric above with how it is recorded: the one list [`describe`] and the
/// checks that the template reads only these names go by.
pub const METRICS: [(&str, Kind); 41] = [
    (REQUESTS, Kind::Counter),
    (REFUSED, Kind::Counter),
    (HANDLER_TIME, Kind::Histogram(Unit::Milliseconds)),
    (EVENTS_BUILT, Kind::Counter),
    (EVENTS_SENT, Kind::Counter),
    (SCORED_EVENTS, Kind::Counter),
    (SCORE_POINTS, Kind::Counter),
    (TALLIES_LOST, Kind::Counter),
    (DEAD_LETTERED, Kind::Counter),
    (END_TO_END_LAG, Kind::Histogram(Unit::Seconds)),
    (CAPI_REQUESTS, Kind::Counter),
    (CAPI_FAILURES, Kind::Counter),
    (CAPI_LATENCY, Kind::Histogram(Unit::Milliseconds)),
    (GRAPH_VERSION_WARNINGS, Kind::Counter),
    (GHL_REQUESTS, Kind::Counter),
    (GHL_UNAUTHORIZED, Kind::Counter),
    (GHL_LATENCY, Kind::Histogram(Unit::Milliseconds)),
    (GHL_RATE_LIMIT_REMAINING, Kind::Histogram(Unit::Count)),
    (GHL_BUDGET_SPENT, Kind::Counter),
    (GHL_BUDGET_WAITS, Kind::Counter),
    (GHL_READS_SAVED, Kind::Counter),
    (TOKEN_REFRESHES, Kind::Counter),
    (RECORDS, Kind::Counter),
    (RETRIED, Kind::Counter),
    (RETRY_REASONS, Kind::Counter),
    (PARTNER_PAUSED, Kind::Counter),
    (TAG_BASELINES, Kind::Counter),
    (SKIPPED, Kind::Counter),
    (WORKFLOW_CALLS, Kind::Counter),
    (WRITE_BACKS, Kind::Counter),
    (AUDIENCE_ROWS, Kind::Counter),
    (AUDIENCE_ERRORS, Kind::Counter),
    (AUDIENCE_SKIPPED, Kind::Counter),
    (AUDIENCE_MIRRORS, Kind::Counter),
    (AUDIENCE_MIRROR_FAILURES, Kind::Counter),
    (MAPPING_VERSIONS, Kind::Counter),
    (MAPPING_REFUSALS, Kind::Counter),
    (CONTACTS_SCANNED, Kind::Counter),
    (MISSED_CHANGES, Kind::Counter),
    (RECONCILE_FAILURES, Kind::Counter),
    (BASELINES_TAKEN, Kind::Counter),
];

/// Every metric name, in [`METRICS`]' order.
pub const NAMES: [&str; METRICS.len()] = {
    let mut names = [""; METRICS.len()];
    let mut i = 0;
    while i < METRICS.len() {
        names[i] = METRICS[i].0;
        i += 1;
    }
    names
};

/// Tells the installed recorder each metric's unit.
pub fn describe() {
    for (name, kind) in METRICS {
        match kind {
            Kind::Counter => describe_counter!(name, Unit::Count, ""),
            Kind::Histogram(unit) => describe_histogram!(name, unit, ""),
        }
    }
}

fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// The `p`-th percentile (0–100) of `sorted` (ascending): the value at rank
/// `⌈(n − 1)·p / 100⌉`, as the status page and the soaks report lag and latency;
/// `None` when there is nothing.
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[(last * p).div_ceil(100)])
}

pub(crate) fn request(outcome: &'static str, status: u16, elapsed: Duration) {
    counter!(REQUESTS, "Outcome" => outcome).increment(1);
    if !(200..300).contains(&status) {
        counter!(REFUSED).increment(1);
    }
    histogram!(HANDLER_TIME, "Outcome" => outcome).record(millis(elapsed));
}

pub(crate) fn event_built(event_name: &str) {
    counter!(EVENTS_BUILT, "EventName" => event_name.to_owned()).increment(1);
}

pub(crate) fn dead_lettered(code: &str) {
    counter!(DEAD_LETTERED, "Reason" => code.to_owned()).increment(1);
}

pub(crate) fn events_sent(received: u64, oldest_lag_seconds: i64) {
    counter!(EVENTS_SENT).increment(received);
    histogram!(END_TO_END_LAG).record(oldest_lag_seconds.max(0) as f64);
}

/// `events` events named `event_name`, sent to `pixel`, scored `points` (hundredths)
/// in all.
pub(crate) fn scored(pixel: &str, event_name: &str, events: u64, points: u64) {
    let dimensions = dimensions(each("Pixel", pixel), &[("EventName", event_name)]);
    counter!(SCORED_EVENTS, &dimensions).increment(events);
    counter!(SCORE_POINTS, &dimensions).increment(points);
}

pub(crate) fn tally_lost() {
    counter!(TALLIES_LOST).increment(1);
}

/// A call's status as a dimension: the HTTP status, or `unreachable`.
fn status_name(status: Option<u16>) -> String {
    status.map_or_else(|| "unreachable".to_owned(), |s| s.to_string())
}

pub(crate) fn capi_call(status: Option<u16>, elapsed: Duration) {
    counter!(CAPI_REQUESTS, "Status" => status_name(status)).increment(1);
    if !matches!(status, Some(200..=299)) {
        counter!(CAPI_FAILURES).increment(1);
    }
    histogram!(CAPI_LATENCY).record(millis(elapsed));
}

pub(crate) fn graph_version_flagged() {
    counter!(GRAPH_VERSION_WARNINGS).increment(1);
}

pub(crate) fn ghl_call(status: Option<u16>, elapsed: Duration, remaining: Option<u64>) {
    counter!(GHL_REQUESTS, "Status" => status_name(status)).increment(1);
    if status == Some(401) {
        counter!(GHL_UNAUTHORIZED).increment(1);
    }
    histogram!(GHL_LATENCY).record(millis(elapsed));
    if let Some(remaining) = remaining {
        histogram!(GHL_RATE_LIMIT_REMAINING).record(remaining as f64);
    }
}

pub(crate) fn ghl_budget_spent(used: &'static str) {
    counter!(GHL_BUDGET_SPENT, "Use" => used).increment(1);
}

pub(crate) fn ghl_budget_wait(used: &'static str) {
    counter!(GHL_BUDGET_WAITS, "Use" => used).increment(1);
}

pub(crate) fn ghl_read_saved() {
    counter!(GHL_READS_SAVED).increment(1);
}

pub(crate) fn token_refreshed() {
    counter!(TOKEN_REFRESHES, "Result" => "refreshed").increment(1);
}

/// A refresh's answer was lost (`unknown`): GHL may have rotated the refresh
/// token. Alarmed on its own (a person may have to install the app again).
pub(crate) fn token_refresh_unknown() {
    counter!(TOKEN_REFRESHES, "Result" => "unknown").increment(1);
}

/// GHL refused a refresh: `refused` (the location's grant is dead), `app_refused`
/// (the app's own credentials), `refused_unknown`, or `refused_after_unknown` (a
/// refresh token GHL most likely rotated in an answer that was lost).
pub(crate) fn token_refused(result: &'static str) {
    counter!(TOKEN_REFRESHES, "Result" => result).increment(1);
    counter!(GHL_UNAUTHORIZED).increment(1);
}

/// A record goes back for a retry, for `reason`.
pub(crate) fn retried(stage: &'static str, reason: &'static str) {
    counter!(RETRY_REASONS, "Stage" => stage, "Reason" => reason).increment(1);
}

pub(crate) fn partner_paused(partner: &'static str) {
    counter!(PARTNER_PAUSED, "Partner" => partner).increment(1);
}

pub(crate) fn tag_baseline() {
    counter!(TAG_BASELINES).increment(1);
}

pub(crate) fn workflow_call(workflow: &str, fired: bool) {
    let outcome = if fired { "fired" } else { "no_rule" };
    let dimensions = dimensions(each("Workflow", workflow), &[("Outcome", outcome)]);
    counter!(WORKFLOW_CALLS, &dimensions).increment(1);
}

pub(crate) fn written_back(kind: &'static str, outcome: &'static str) {
    counter!(WRITE_BACKS, "Kind" => kind, "Outcome" => outcome).increment(1);
}

pub(crate) fn skipped(reason: &'static str) {
    counter!(SKIPPED, "Reason" => reason).increment(1);
}

/// `rows` rows of `audience` went `outcome` (`added`, `removed`, `invalid`,
/// `refused`).
pub(crate) fn audience_rows(audience: &str, outcome: &'static str, rows: u64) {
    if rows > 0 {
        let dimensions = dimensions(each("Audience", audience), &[("Outcome", outcome)]);
        counter!(AUDIENCE_ROWS, &dimensions).increment(rows);
    }
}

pub(crate) fn audience_error(audience: &str, reason: &'static str) {
    counter!(AUDIENCE_ERRORS).increment(1);
    let dimensions = dimensions(each("Audience", audience), &[("Reason", reason)]);
    counter!(AUDIENCE_ERRORS, &dimensions).increment(1);
}

pub(crate) fn contacts_scanned(n: u64) {
    counter!(CONTACTS_SCANNED).increment(n);
}

pub(crate) fn missed_changes(location: &str, n: usize) {
    counter!(MISSED_CHANGES).increment(n as u64);
    if let Some(location) = each("Location", location) {
        counter!(MISSED_CHANGES, &[location]).increment(n as u64);
    }
}

pub(crate) fn baseline_taken(location: &str) {
    counter!(BASELINES_TAKEN).increment(1);
    if let Some(location) = each("Location", location) {
        counter!(BASELINES_TAKEN, &[location]).increment(1);
    }
}

pub(crate) fn reconcile_failed() {
    counter!(RECONCILE_FAILURES).increment(1);
}

pub(crate) fn audience_mirror(audience: &str, replaced: bool) {
    let outcome = if replaced { "replaced" } else { "failed" };
    let dimensions = dimensions(each("Audience", audience), &[("Outcome", outcome)]);
    counter!(AUDIENCE_MIRRORS, &dimensions).increment(1);
    if !replaced {
        counter!(AUDIENCE_MIRROR_FAILURES).increment(1);
    }
}

pub(crate) fn mapping_version(outcome: &'static str) {
    counter!(MAPPING_VERSIONS, "Outcome" => outcome).increment(1);
    if outcome == "refused" {
        counter!(MAPPING_REFUSALS).increment(1);
    }
}

pub(crate) fn audience_skipped(reason: &'static str) {
    counter!(AUDIENCE_SKIPPED, "Reason" => reason).increment(1);
}

/// One SQS batch ended: its size and how many records go back for a retry.
pub fn batch(function: &'static str, records: usize, retried: usize) {
    counter!(RECORDS, "Function" => function).increment(records as u64);
    counter!(RETRIED, "Function" => function).increment(retried as u64);
}
