//! Which GHL apps' webhooks are ours. GHL signs every app's deliveries with one
//! key, so a signature proves a delivery came from GHL, not that it is meant for
//! us: another developer can point their app's webhook URL at ours. Marketplace
//! deliveries name their app (`appId`); with our app's id(s) configured, another
//! app's are acknowledged and dropped.

use super::Envelope;

/// `GHL_APP_ID`: our marketplace app's id, or several (comma-separated).
pub const APP_ID_VAR: &str = "GHL_APP_ID";

/// Our apps' ids; none configured: every signed delivery is taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppIds(Vec<String>);

impl AppIds {
    /// The ids in `text` (comma- or whitespace-separated).
    pub fn parse(text: &str) -> AppIds {
        AppIds(
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a delivery is for one of our apps: always when none is configured,
    /// and when it names no app (GHL names the app on every marketplace delivery,
    /// so another app's always says whose it is).
    pub fn ours(&self, envelope: &Envelope) -> bool {
        match &envelope.app_id {
            Some(app) if !self.0.is_empty() => self.0.iter().any(|id| id == app),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(app: Option<&str>) -> Envelope {
        Envelope {
            app_id: app.map(str::to_owned),
            ..Envelope::default()
        }
    }

    #[test]
    fn another_apps_delivery_is_not_ours_once_ours_are_named() {
        let ours = AppIds::parse("app-1, app-2");
        assert!(ours.ours(&from(Some("app-2"))));
        assert!(!ours.ours(&from(Some("their-app"))));
        assert!(ours.ours(&from(None)));
        assert!(
            AppIds::default().ours(&from(Some("their-app"))),
            "none named: all taken"
        );
    }
}
