//! Which GHL apps' webhooks are ours. GHL signs every app's deliveries with one
//! key, so a signature proves a delivery came from GHL, not that it is meant for
//! us: another developer can point their app's webhook URL at ours. Marketplace
//! deliveries name their app (`appId`): only those naming one of our apps are
//! ours. With no app configured, no delivery is (the webhook route refuses them:
//! without a marketplace app, GHL reaches us through workflows).

use super::Envelope;

/// `GHL_APP_ID`: our marketplace app's id, or several (comma-separated).
pub const APP_ID_VAR: &str = "GHL_APP_ID";

/// Our apps' ids; none configured: no delivery is ours.
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

    /// Our apps' ids and `more`.
    pub fn and(mut self, more: &str) -> AppIds {
        self.0.push(more.to_owned());
        self
    }

    /// Whether a delivery is for one of our apps: it names one (GHL names the app
    /// on every marketplace delivery; one naming none cannot be told from another
    /// app's).
    pub fn ours(&self, envelope: &Envelope) -> bool {
        envelope
            .app_id
            .as_ref()
            .is_some_and(|app| self.0.iter().any(|id| id == app))
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
    fn only_a_delivery_naming_one_of_our_apps_is_ours() {
        let ours = AppIds::parse("app-1, app-2");
        assert!(ours.ours(&from(Some("app-2"))));
        assert!(!ours.ours(&from(Some("their-app"))));
        assert!(!ours.ours(&from(None)), "naming no app: anyone's");
        assert!(ours.clone().and("app-3").ours(&from(Some("app-3"))));
        for app in [Some("their-app"), None] {
            assert!(!AppIds::default().ours(&from(app)), "none named: none ours");
        }
    }
}
