//! The Meta Conversions API wire model: server events that serialise exactly to the
//! Graph API's JSON (no `null`s, no empty lists), checked before they are sent.

pub mod client;
mod event;
pub mod graph;
mod user_data;
mod validate;

pub use event::{
    ActionSource, Content, CustomData, EventRequest, MAX_BATCH, OriginalEventData, STANDARD_EVENTS,
    ServerEvent, canonical_event_name, event_id, write_event_id,
};
pub use user_data::{UserData, fbc_from_click};
pub use validate::{Rejection, check_event_time, is_currency_code, validate};
