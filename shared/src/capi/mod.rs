//! Meta's vocabulary: the Conversions API wire model (server events that serialise
//! exactly to the API's JSON: no `null`s, no empty lists), checked before they are
//! sent; what Meta's answers mean; and the API client with its port.
//!
//! - [`event`], [`user_data`]: events and request bodies.
//! - [`validate`](mod@validate): what Meta would refuse, checked first.
//! - [`answer`]: each answer classified (delivered, retry, token problem, invalid).
//! - [`audience`]: Custom Audiences' rows, requests and answers; [`replace`]: a
//!   whole list replaced in a session (`usersreplace`).
//! - [`score`]: the identifier coverage score of an event's `user_data`;
//!   [`dataset_quality`]: Meta's own figures, where its API gives them.
//! - [`client`]: the HTTPS client and the [`EventsApi`] port.

pub mod answer;
pub mod audience;
pub mod client;
pub mod dataset_quality;
mod event;
mod payload;
pub mod replace;
pub mod score;
mod user_data;
mod validate;

pub use client::{
    Answer, AudiencesApi, CapiClient, EventsApi, PixelToken, PixelTokens, TransportError,
};
pub use event::{
    ActionSource, Content, CustomData, EventRequest, MAX_BATCH, OriginalEventData, STANDARD_EVENTS,
    ServerEvent, canonical_event_name, event_id, write_event_id,
};
pub use user_data::{UserData, fbc_from_click};
pub use validate::{Rejection, check_event_time, is_currency_code, validate};
