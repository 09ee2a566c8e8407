//! What a deployment costs a month whatever its events: the custom metrics' series
//! its functions publish (each billed by the hour, for the hours it is published
//! in), its alarms' metrics, its dashboard, its secrets and each location's
//! scheduled reconciliation, for an agency of a given size.
//! The series are those the workloads' runs published, counted apart by what keeps
//! them apart: one set for the deployment, and one more for each pixel, audience,
//! workflow and location the dimensions name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ghl_capi::telemetry::Detail;

use super::prices::AS_OF;
use super::units::Units;
use crate::template::template;

/// Dollars a month, past each free tier (as the per-event prices are): a custom
/// metric's series published in every hour (the first 10,000), an alarm's metric
/// (standard resolution), a dashboard, a secret.
const SERIES: f64 = 0.30;
const ALARM_METRIC: f64 = 0.10;
const DASHBOARD: f64 = 3.00;
const SECRET: f64 = 0.40;

/// The dimensions that name one of an agency's many things, in the order a series
/// is put under one (a pixel's series also carry its event names), and how the
/// report says one.
const MANY: [(&str, &str); 4] = [
    ("Pixel", "a pixel, by its event names"),
    ("Audience", "an audience"),
    ("Workflow", "a workflow"),
    ("Location", "a location"),
];

/// Series counted in the runs: the deployment's own, and per thing of each kind
/// in [`MANY`].
#[derive(Debug, Default)]
pub(crate) struct Series {
    fixed: usize,
    /// Per kind: series a thing of it adds, and the metrics they are.
    each: BTreeMap<&'static str, (f64, BTreeSet<String>)>,
}

impl Series {
    /// `seen` ([`crate::common::Emf::series`]) sorted by what multiplies them.
    pub(crate) fn of(seen: &BTreeSet<(String, Vec<(String, String)>)>) -> Series {
        let mut series = Series::default();
        // Per kind: its series, the things they name, and the metrics.
        type Things = (usize, BTreeSet<String>, BTreeSet<String>);
        let mut things: BTreeMap<&'static str, Things> = BTreeMap::new();
        for (name, dimensions) in seen {
            let kind = MANY.iter().find_map(|(kind, _)| {
                let (_, value) = dimensions.iter().find(|(d, _)| d == kind)?;
                Some((*kind, value))
            });
            match kind {
                Some((kind, value)) => {
                    let (n, values, names) = things.entry(kind).or_default();
                    *n += 1;
                    values.insert(value.clone());
                    names.insert(name.clone());
                }
                None => series.fixed += 1,
            }
        }
        for (kind, (n, values, names)) in things {
            series
                .each
                .insert(kind, (n as f64 / values.len() as f64, names));
        }
        series
    }

    /// Series a pixel (audience, …) adds.
    fn each(&self, kind: &str) -> f64 {
        self.each.get(kind).map_or(0.0, |(n, _)| *n)
    }

    /// `n` a pixel (…), and the metrics they are.
    fn said(&self, (kind, one): (&str, &str)) -> String {
        match self.each.get(kind) {
            Some((n, names)) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                format!("{n} {one} ({})", names.join(", "))
            }
            None => format!("0 {one}"),
        }
    }
}

/// What the template itself keeps, as deployed with its parameters' defaults: its
/// alarms' metrics (an alarm on metric math is billed for each metric it reads),
/// dashboards and secrets; and what its conditions (the marketplace app) add.
struct Standing {
    alarms: usize,
    alarm_metrics: usize,
    dashboards: usize,
    secrets: usize,
    /// Alarm metrics and secrets of resources deployed only on a condition.
    optional: (usize, usize),
}

impl Standing {
    fn from_template() -> Standing {
        let t = template();
        let resources = t["Resources"].as_hash().expect("resources");
        // A resource with a condition is left out by the defaults (`UseMarketplaceApp`).
        let of = |kind: &'static str, conditional: bool| {
            resources.values().filter(move |r| {
                r["Type"].as_str() == Some(kind) && r["Condition"].is_badvalue() != conditional
            })
        };
        let metrics = |alarm: &yaml_rust2::Yaml| match alarm["Properties"]["Metrics"].as_vec() {
            Some(math) => math
                .iter()
                .filter(|m| !m["MetricStat"].is_badvalue())
                .count(),
            None => 1,
        };
        const ALARM: &str = "AWS::CloudWatch::Alarm";
        const SECRET: &str = "AWS::SecretsManager::Secret";
        Standing {
            alarms: of(ALARM, false).count(),
            alarm_metrics: of(ALARM, false).map(metrics).sum(),
            dashboards: of("AWS::CloudWatch::Dashboard", false).count(),
            secrets: of(SECRET, false).count(),
            optional: (of(ALARM, true).map(metrics).sum(), of(SECRET, true).count()),
        }
    }
}

/// A location's scheduled reconciliation, a run every `every` minutes: dollars a
/// run, quiet and active, and an active run's units.
pub(crate) struct Reconciliation {
    pub(crate) every: f64,
    pub(crate) quiet: f64,
    pub(crate) active: f64,
    pub(crate) units: Units,
}

impl Reconciliation {
    /// Runs in a month of 30 days.
    fn runs(&self) -> f64 {
        30.0 * 24.0 * 60.0 / self.every
    }

    /// Dollars a location a month, every run active.
    fn month(&self) -> f64 {
        self.active * self.runs()
    }
}

/// An agency's deployment a month, for each size asked.
pub(crate) struct Month {
    series: Series,
    reconciliation: Reconciliation,
    standing: Standing,
    sizes: Vec<usize>,
    detail: Detail,
}

impl Month {
    /// `series` as the runs published them (kept apart as `detail` says), for one
    /// sub-account and `locations`.
    pub(crate) fn new(
        series: Series,
        reconciliation: Reconciliation,
        locations: usize,
        detail: Detail,
    ) -> Month {
        let mut sizes = vec![1, locations];
        sizes.dedup();
        Month {
            series,
            reconciliation,
            standing: Standing::from_template(),
            sizes,
            detail,
        }
    }

    /// Series for an agency of `n` sub-accounts, each with its own pixel,
    /// audience, workflow and location.
    fn series_for(&self, n: usize) -> f64 {
        let each: f64 = MANY.iter().map(|(k, _)| self.series.each(k)).sum();
        self.series.fixed as f64 + each * n as f64
    }

    /// Secrets for `n` sub-accounts: the template's, and a GHL token set each.
    fn secrets_for(&self, n: usize) -> usize {
        self.standing.secrets + n
    }

    /// Dollars a month for `n` sub-accounts, every series published in every hour.
    pub(crate) fn dollars(&self, n: usize) -> f64 {
        self.series_for(n) * SERIES
            + self.standing.alarm_metrics as f64 * ALARM_METRIC
            + self.standing.dashboards as f64 * DASHBOARD
            + self.secrets_for(n) as f64 * SECRET
            + self.reconciliation.month() * n as f64
    }

    pub(crate) fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, t) = (&self.series, &self.standing);
        writeln!(
            f,
            "a month whatever the events (prices of {AS_OF}: ${SERIES:.2} a metric series, \
             ${ALARM_METRIC:.2} an alarm's metric, ${DASHBOARD:.2} a dashboard, ${SECRET:.2} a secret)"
        )?;
        let each: Vec<String> = MANY.iter().map(|&k| s.said(k)).collect();
        let detail = self.detail.name();
        writeln!(
            f,
            "  series the runs published (METRIC_DETAIL={detail}): {} for the deployment; {}",
            s.fixed,
            each.join("; "),
        )?;
        writeln!(
            f,
            "  the template as its defaults deploy it: {} alarms reading {} metrics, {} dashboard, \
             {} secrets (the marketplace app adds {} alarm metric and {} secret); and a GHL token \
             set a location (one Meta token serving every pixel)",
            t.alarms, t.alarm_metrics, t.dashboards, t.secrets, t.optional.0, t.optional.1
        )?;
        let r = &self.reconciliation;
        let u = &r.units;
        writeln!(
            f,
            "  reconciliation every {} minutes ({:.0} runs a month), a location's run: ${:.7} \
             quiet, ${:.7} active ({:.1} write and {:.1} read units, {:.1} Secrets Manager calls, \
             {:.4} GB-s, {:.0} log bytes): ${:.3} a location a month, every run active",
            r.every,
            r.runs(),
            r.quiet,
            r.active,
            u.write_units,
            u.read_units,
            u.secrets_calls,
            u.gb_seconds,
            u.log_bytes,
            r.month(),
        )?;
        writeln!(
            f,
            "  each sub-account with a pixel, an audience, a workflow and a location; every series \
             published in every hour (a series is billed only for the hours it is published in)"
        )?;
        writeln!(
            f,
            "  | sub-accounts | series | $ metrics | $ alarms | $ dashboard | secrets | $ secrets | $ reconciliation | $ a month |"
        )?;
        for &n in &self.sizes {
            let series = self.series_for(n);
            let secrets = self.secrets_for(n);
            writeln!(
                f,
                "  | {n} | {series:.0} | {:.2} | {:.2} | {:.2} | {secrets} | {:.2} | {:.2} | **{:.2}** |",
                series * SERIES,
                t.alarm_metrics as f64 * ALARM_METRIC,
                t.dashboards as f64 * DASHBOARD,
                secrets as f64 * SECRET,
                r.month() * n as f64,
                self.dollars(n),
            )?;
        }
        Ok(())
    }
}
