//! The page the person installing sees.

use super::{InstallError, Installed};

/// The page the installing user sees.
pub fn page(outcome: &Result<Installed, InstallError>) -> String {
    let (title, text) = match outcome {
        Ok(Installed::Location { location_id }) => (
            "Connected",
            format!("ghl-capi is connected to location {location_id}. You can close this window."),
        ),
        Ok(Installed::Company { locations, .. }) => (
            "Connected",
            format!(
                "ghl-capi is connected to your agency and {} location(s). You can close this window.",
                locations.len()
            ),
        ),
        Err(e) => (
            "Not connected",
            format!("The install did not complete: {e}"),
        ),
    };
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ghl-capi: {title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{title}</h1><p>{}</p></body></html>",
        escape(&text)
    )
}
