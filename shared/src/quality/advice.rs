//! What in GHL fills each key an event lacks: the line `verify` and the status page
//! print beside a gap ("34 % of Lead events have no phone: …").

use super::{ByEvent, Tally};
use crate::capi::score::Key;

/// The keys advised on: those that weigh most.
const ADVISED: [Key; 5] = [
    Key::LeadId,
    Key::ClickId,
    Key::Email,
    Key::Phone,
    Key::ExternalId,
];
/// A gap is advised on from this share of events lacking the key (%).
const ADVISE_FROM: u64 = 10;

/// Whether a pixel gets Lead Ads leads at all: some of its events carry a lead id.
pub fn uses_lead_ads(by_event: &ByEvent) -> bool {
    by_event
        .values()
        .any(|t| t.has.get(&Key::LeadId).is_some_and(|n| *n > 0))
}

/// The gaps of `tally` worth a line, costliest first (the share lacking times the
/// key's weight): the strong keys a tenth or more of its events lack. The lead id
/// counts only where the pixel gets Lead Ads leads (`lead_ads`): elsewhere no
/// mapping can fill it.
pub fn worth_advice(tally: &Tally, lead_ads: bool) -> Vec<(Key, u64)> {
    let mut gaps: Vec<(Key, u64)> = ADVISED
        .into_iter()
        .filter(|key| lead_ads || *key != Key::LeadId)
        .map(|key| (key, tally.lacking(key)))
        .filter(|(_, share)| *share >= ADVISE_FROM)
        .collect();
    gaps.sort_by_key(|(key, share)| std::cmp::Reverse(share * u64::from(key.weight())));
    gaps
}

/// Where `key` comes from in GHL, and what to change when events lack it.
pub fn fill(key: Key) -> &'static str {
    match key {
        Key::LeadId => {
            "map the Lead Ads lead id: `lead_id = { field = \"custom.<the field GHL's Facebook \
             Lead Ads integration fills>\" }` on the rule"
        }
        Key::ClickId => {
            "keep `needs = [\"attribution\"]` (the default) on the rule: contacts who came from \
             an ad carry its fbclid in their attribution; others have none"
        }
        Key::Email => "GHL has none for these contacts: make `email` a required field of the form",
        Key::Phone => {
            "GHL has none for these contacts: map `contact.phone`, or ask for it in the form"
        }
        Key::ExternalId => {
            "sent as the contact id unless a rule's `external_id` names a field these contacts \
             lack: leave `external_id` out of the rule"
        }
        Key::FirstName | Key::LastName => {
            "ask for the full name in the form (`firstName`, `lastName`)"
        }
        Key::Zip | Key::City | Key::State | Key::Country => {
            "ask for the address in the form, or set the location's country so GHL fills it"
        }
        Key::DateOfBirth => "GHL's `dateOfBirth` field: ask for it where it is relevant",
        Key::Gender => "not a standard GHL field: rarely worth asking for",
        Key::BrowserId | Key::IpAddress | Key::UserAgent => {
            "come from the form visit's attribution (`needs = [\"attribution\"]`); contacts \
             entered by hand or imported have none"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(sent: u64, has: &[(Key, u64)]) -> Tally {
        Tally {
            sent,
            has: has.iter().copied().collect(),
            ..Tally::default()
        }
    }

    #[test]
    fn gaps_come_costliest_first_and_the_lead_id_only_where_lead_ads_run() {
        let leads = tally(10, &[(Key::Email, 10), (Key::Phone, 2), (Key::ClickId, 5)]);
        let gaps = worth_advice(&leads, false);
        // Phone lacking in 80 % (× 1.5) before click id in 50 % (× 2.0).
        // Phone lacking in 80 % (× 1.5) before click id in 50 % (× 2.0), before
        // the external id in all (× 0.7).
        assert_eq!(
            gaps,
            [(Key::Phone, 80), (Key::ClickId, 50), (Key::ExternalId, 100)]
        );
        let mut by_event = ByEvent::new();
        by_event.insert("Lead".into(), leads.clone());
        assert!(!uses_lead_ads(&by_event));
        by_event.insert("Qualified".into(), tally(1, &[(Key::LeadId, 1)]));
        assert!(uses_lead_ads(&by_event));
        assert_eq!(worth_advice(&leads, true)[0], (Key::LeadId, 100));
        assert!(
            worth_advice(
                &tally(
                    4,
                    &[
                        (Key::Email, 4),
                        (Key::Phone, 4),
                        (Key::ClickId, 4),
                        (Key::ExternalId, 4)
                    ]
                ),
                false
            )
            .is_empty()
        );
    }
}
