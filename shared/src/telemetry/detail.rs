//! How finely the metrics are kept apart: a series for each pixel, audience,
//! workflow and location, or totals only ([`Detail`]).

use std::sync::atomic::{AtomicBool, Ordering};

/// How finely the metrics that name one of an agency's many things (a pixel, an
/// audience, a workflow, a location) are kept apart. On CloudWatch each series
/// costs $0.30 a month, billed by the hour for the hours it is published in:
/// fifty sub-accounts' pixels by three event names are 300 series, $90 a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// A series for each of them (the default).
    #[default]
    Each,
    /// Totals only (by event name, outcome or reason): each one's figures stay in
    /// `verify` (a pixel's quality) and the log lines, which name them.
    Total,
}

impl Detail {
    /// As `METRIC_DETAIL` (and the template's `MetricDetail`) spells it.
    pub fn name(self) -> &'static str {
        match self {
            Detail::Each => "each",
            Detail::Total => "total",
        }
    }

    /// The detail spelt `name`.
    pub fn named(name: &str) -> Option<Detail> {
        [Detail::Each, Detail::Total]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

static TOTALS_ONLY: AtomicBool = AtomicBool::new(false);

/// How finely this process's metrics are kept apart, from now on (a function sets
/// it at cold start; local mode's `/metrics` keeps [`Detail::Each`]).
pub fn keep_apart(detail: Detail) {
    TOTALS_ONLY.store(detail == Detail::Total, Ordering::Relaxed);
}

/// The dimension naming one of many things, unless only totals are kept.
pub(super) fn each(dimension: &'static str, value: &str) -> Option<(&'static str, String)> {
    (!TOTALS_ONLY.load(Ordering::Relaxed)).then(|| (dimension, value.to_owned()))
}

/// `first` (when kept) and `rest`, as a metric's dimensions.
pub(super) fn dimensions(
    first: Option<(&'static str, String)>,
    rest: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    first
        .into_iter()
        .chain(rest.iter().map(|(d, v)| (*d, (*v).to_owned())))
        .collect()
}
