//! The functions' logs and metrics: JSON lines as CloudWatch Logs Insights reads
//! them, and metrics in the Embedded Metric Format flushed after each invocation.
//! Nothing logged anywhere carries PII or secrets.

use ghl_capi::settings::{SettingsError, metric_detail};

/// JSON logs, one object per line, with the level from `RUST_LOG` (default `info`);
/// and metrics as EMF lines, kept apart as `METRIC_DETAIL` says.
pub fn init_telemetry() -> Result<(), SettingsError> {
    json_logs(std::io::stdout).init();
    crate::metrics::install(Box::new(|| Box::new(std::io::stdout())));
    ghl_capi::telemetry::keep_apart(metric_detail(|name| std::env::var(name).ok())?);
    Ok(())
}

/// The log format: `{"level", "fields": {"message", …}}` per line, as the functions
/// write it (and the cost bench counts it).
pub fn json_logs<W>(
    writer: W,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json, ()>,
    tracing_subscriber::EnvFilter,
    W,
>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_one_json_object_each() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = super::json_logs(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(status = 429, outcome = "enqueue_failed", "request");
            tracing::warn!(code = "too_old", "dead letter");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines[0]["fields"]["message"], "request");
        assert_eq!(lines[0]["fields"]["status"], 429);
        assert_eq!(lines[1]["fields"]["code"], "too_old");
        assert_eq!(lines[1]["level"], "WARN");
    }
}
