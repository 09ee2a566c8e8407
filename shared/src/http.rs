//! The one way this crate builds HTTP clients: every call bounded in time, connecting
//! included, so a stuck partner turns into a retry rather than a hung function.

use std::time::Duration;

/// A client whose requests give up after `timeout` (connecting after at most 5 s).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
}

/// A base URL without its trailing slash, ready for `{base}{path}`.
pub(crate) fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}
