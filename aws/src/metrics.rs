//! CloudWatch metrics in the Embedded Metric Format. What the library records (see
//! [`ghl_capi::telemetry`]) is collected in memory and written as EMF JSON lines at
//! the end of each invocation; CloudWatch Logs turns them into metrics, with no API
//! call and no latency.

use std::io::Write;
use std::sync::OnceLock;

use metrics_cloudwatch_embedded::{Builder, Collector};

/// Where the functions' metrics live.
pub const NAMESPACE: &str = "ghl-capi";

/// Where a flush writes: stdout on Lambda, a buffer in tests.
pub type Sink = Box<dyn Fn() -> Box<dyn Write + Send> + Send + Sync>;

static INSTALLED: OnceLock<(&'static Collector, Sink)> = OnceLock::new();

/// Makes this process's collector the recorder of every metric, flushed to `sink`.
/// The first call wins; later ones leave it as it is.
pub fn install(sink: Sink) {
    INSTALLED.get_or_init(|| {
        let collector = Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .init()
            // Only fails if another recorder was set, which nothing here does.
            .expect("the only metrics recorder of the process");
        ghl_capi::telemetry::describe();
        (collector, sink)
    });
}

/// Writes what was recorded since the last flush, one EMF line per dimension set.
pub fn flush() {
    let Some((collector, sink)) = INSTALLED.get() else {
        return;
    };
    // Gathered first, then written in one call (one lock of stdout), so no log line
    // from another thread can land inside a metrics document.
    let mut lines = Vec::new();
    if let Err(e) = collector
        .flush(&mut lines)
        .and_then(|()| sink().write_all(&lines))
    {
        tracing::warn!(error = %e, "could not write metrics");
    }
}
