//! Whose jobs reach the pixels and audiences kept for "all locations": those of
//! the locations connected here (a GHL token, or an install), and those an API key
//! posted for (its scope names the location, or its holder was trusted with all).
//! A webhook may name any location id: anyone can install a public marketplace
//! app, and its deliveries carry our app's id; one from a location with no token
//! or install here reaches only the pixels and audiences that name it.

use super::Read;
use crate::mapping::{Audience, Mapping};

impl Read {
    /// Whether the job's events may go to `pixel`.
    pub(super) fn reaches_pixel(&self, mapping: &Mapping, pixel: &str) -> bool {
        !self.stranger || mapping.pixel_names(pixel, &self.location)
    }

    /// Whether the job may move the contact in `audience`.
    pub(super) fn reaches_audience(&self, audience: &Audience) -> bool {
        !self.stranger || audience.names(&self.location)
    }
}

/// Logs and counts a job whose location is no one's here, and that reaches no
/// pixel.
pub(super) fn stranger_dropped(source: &str, location: &str) {
    tracing::warn!(
        webhook_id = source,
        location_id = location,
        "a webhook of a location with no GHL token or install here: it reaches only pixels \
         and audiences that name it, and none does"
    );
    crate::telemetry::skipped("unconnected_location");
}
