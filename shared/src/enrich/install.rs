//! `INSTALL` and `UNINSTALL` webhooks in enrichment: the tokens they concern.

use super::{Enriched, Enricher, retry_ghl};
use crate::ghl::GhlReader;
use crate::ghl::webhook::Webhook;
use crate::ports::state::StateStore;

impl<G: GhlReader, S: StateStore> Enricher<'_, G, S> {
    /// `INSTALL` and `UNINSTALL`: the tokens they concern. `None` for other webhooks.
    pub(super) async fn install(&mut self, webhook: &Webhook) -> Option<Result<(), Enriched>> {
        let outcome = match webhook {
            Webhook::AppInstall(e) => {
                let (Some(location), Some(company)) =
                    (e.envelope.location_id.as_deref(), e.company_id.as_deref())
                else {
                    return Some(Ok(()));
                };
                self.fetched.ghl().installed(location, company).await
            }
            Webhook::AppUninstall(e) => {
                let (location, company) =
                    (e.envelope.location_id.as_deref(), e.company_id.as_deref());
                let sent_at = e.envelope.sent_at();
                self.fetched
                    .ghl()
                    .uninstalled(location, company, sent_at)
                    .await
            }
            _ => return None,
        };
        Some(outcome.map_err(|e| retry_ghl(&e, vec![webhook.kind().to_owned()])))
    }
}
