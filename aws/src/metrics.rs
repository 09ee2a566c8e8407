//! CloudWatch metrics in the Embedded Metric Format: one JSON line on stdout per
//! measurement, which CloudWatch Logs turns into metrics; no API call, no latency.

use serde_json::{Map, Value, json};

/// Where the functions' metrics live.
pub const NAMESPACE: &str = "ghl-capi";

/// One EMF line: `metrics` (name, value, unit) under `dimensions` (name, value).
pub fn line(
    dimensions: &[(&str, &str)],
    metrics: &[(&str, f64, &str)],
    timestamp_ms: i64,
) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics
                    .iter()
                    .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).into(), json!(value));
    }
    for (name, value, _) in metrics {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root).to_string()
}

/// Writes one EMF line to stdout, where Lambda sends it to CloudWatch Logs.
pub fn emit(dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) {
    println!(
        "{}",
        line(dimensions, metrics, chrono::Utc::now().timestamp_millis())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_declares_its_metrics_and_carries_their_values() {
        let text = line(
            &[("Outcome", "accepted")],
            &[
                ("Requests", 1.0, "Count"),
                ("HandlerTime", 0.25, "Milliseconds"),
            ],
            1_700_000_000_000,
        );
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["Outcome"], "accepted");
        assert_eq!(v["Requests"], 1.0);
        let declared = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "ghl-capi");
        assert_eq!(declared["Dimensions"], json!([["Outcome"]]));
        assert_eq!(
            declared["Metrics"][1],
            json!({"Name": "HandlerTime", "Unit": "Milliseconds"})
        );
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }
}
