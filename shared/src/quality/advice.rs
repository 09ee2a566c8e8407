//! What in GHL fills each key an event lacks: the line `verify` and the status page
//! print beside a gap ("34 % of Lead events have no phone: …").

use crate::capi::score::Key;

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
