//! What the AWS tests share beyond `ghl_capi_tests`: the EMF lines the functions
//! write, captured.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The EMF lines the functions write, captured for this test binary. The recorder is
/// process-wide, so the tests that read it (and those that would add to it) run one
/// at a time, under [`ONE_AT_A_TIME`].
#[derive(Clone, Default)]
pub struct Emf(Arc<Mutex<Vec<u8>>>);

static EMF: std::sync::OnceLock<Emf> = std::sync::OnceLock::new();
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl std::io::Write for Emf {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Emf {
    /// The capture, installed once and emptied for the calling test.
    pub fn start() -> Emf {
        let emf = EMF
            .get_or_init(|| {
                let emf = Emf::default();
                let sink = emf.clone();
                ghl_capi_aws::metrics::install(Box::new(move || Box::new(sink.clone())));
                emf
            })
            .clone();
        ghl_capi_aws::metrics::flush();
        emf.0.lock().expect("lock").clear();
        emf
    }

    /// Every line written so far (flushing what is pending), each checked to be an EMF document of our namespace
    /// whose declared dimensions are the ones it carries.
    pub fn lines(&self) -> Vec<Value> {
        ghl_capi_aws::metrics::flush();
        let text = String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        for line in &lines {
            let declared = &line["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(declared["Namespace"], "ghl-capi", "{line}");
            for dimension in declared["Dimensions"][0].as_array().expect("dimensions") {
                assert!(
                    line[dimension.as_str().expect("name")].is_string(),
                    "{line}"
                );
            }
            for metric in declared["Metrics"].as_array().expect("metrics") {
                let name = metric["Name"].as_str().expect("name");
                assert!(ghl_capi::telemetry::NAMES.contains(&name), "{name}");
                assert!(metric["Unit"].is_string(), "{name} has a unit");
                assert!(!line[name].is_null(), "{name} has a value");
            }
        }
        lines
    }

    /// Every distinct series written so far: a metric's name and its dimensions'
    /// values, however often published.
    pub fn series(&self) -> BTreeSet<(String, Vec<(String, String)>)> {
        let mut series = BTreeSet::new();
        for line in self.lines() {
            let declared = &line["_aws"]["CloudWatchMetrics"][0];
            let dimensions: Vec<(String, String)> = (declared["Dimensions"][0].as_array())
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|d| {
                    (
                        d.to_owned(),
                        line[d].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            for metric in declared["Metrics"].as_array().into_iter().flatten() {
                let name = metric["Name"].as_str().unwrap_or_default().to_owned();
                series.insert((name, dimensions.clone()));
            }
        }
        series
    }

    /// The values of `name` under exactly `dimensions`: one per count flushed, or
    /// each value a histogram recorded.
    pub fn values(&self, name: &str, dimensions: &[(&str, &str)]) -> Vec<f64> {
        self.lines()
            .iter()
            .filter(|line| {
                let declared = &line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0];
                declared.as_array().map(Vec::len) == Some(dimensions.len())
                    && dimensions.iter().all(|(k, v)| line[*k] == *v)
            })
            .flat_map(|line| match &line[name] {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).collect::<Vec<_>>(),
                value => value.as_f64().into_iter().collect(),
            })
            .collect()
    }

    /// Bytes and lines written so far (flushing what is pending).
    pub fn written(&self) -> (usize, usize) {
        ghl_capi_aws::metrics::flush();
        let text = self.0.lock().expect("lock");
        (text.len(), text.iter().filter(|b| **b == b'\n').count())
    }

    pub fn count(&self, name: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.values(name, dimensions).iter().sum()
    }
}
