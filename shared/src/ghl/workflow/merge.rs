//! GHL's merge fields, which a workflow action fills in before it calls (as
//! reported; GHL lists them in the action's value picker) \[secondary\].

pub const LOCATION_ID: &str = "{{location.id}}";
pub const CONTACT_ID: &str = "{{contact.id}}";
/// The contact's fields, by the name a workflow call gives them.
pub const CONTACT: [(&str, &str); 8] = [
    ("email", "{{contact.email}}"),
    ("phone", "{{contact.phone}}"),
    ("firstName", "{{contact.first_name}}"),
    ("lastName", "{{contact.last_name}}"),
    ("city", "{{contact.city}}"),
    ("state", "{{contact.state}}"),
    ("postalCode", "{{contact.postal_code}}"),
    ("country", "{{contact.country}}"),
];
/// The moment the action runs, to the second, as digits (in the location's
/// time zone; whether GHL pads them is not known, and either way one run
/// gives one text).
pub const RIGHT_NOW: &str = "{{right_now.year}}{{right_now.month}}{{right_now.day}}\
                             {{right_now.hour}}{{right_now.minute}}{{right_now.second}}";
