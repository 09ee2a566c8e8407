//! The Opportunities API's search, as reconciliation reads it: a location's
//! opportunities a page at a time (`GET /opportunities/search` with `location_id`
//! and `limit`, at most 100), each next page from the cursor GHL's `meta` gives
//! (`startAfter`, `startAfterId`). Its filters by time are documented without
//! saying which time they read, so none is used: a listing is whole.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::budget::Use;
use super::client::GhlClient;
use super::reader::GhlError;
use super::tokens::TokenSource;

/// Opportunities per page: GHL's most.
pub const PAGE: u32 = 100;

/// An opportunity as the search lists it (unknown fields kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Opportunity {
    pub id: String,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub pipeline_stage_id: Option<String>,
    /// `open`, `won`, `lost` or `abandoned`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_status_change_at: Option<String>,
    #[serde(default)]
    pub last_stage_change_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where the next page starts: GHL's `meta.startAfter` and `meta.startAfterId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub start_after: String,
    pub start_after_id: String,
}

/// One page of the search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpportunityPage {
    pub opportunities: Vec<Opportunity>,
    /// `None` once this was the last page.
    pub next: Option<Cursor>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    opportunities: Vec<Opportunity>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    start_after: Option<Value>,
    #[serde(default)]
    start_after_id: Option<String>,
}

impl<T: TokenSource> GhlClient<T> {
    /// `GET /opportunities/search`: one page of `location_id`'s opportunities,
    /// from `after` (the first page without it).
    pub async fn search_opportunities(
        &self,
        (location_id, used): (&str, Use),
        after: Option<&Cursor>,
    ) -> Result<OpportunityPage, GhlError> {
        let limit = PAGE.to_string();
        let mut query = vec![("location_id", location_id), ("limit", limit.as_str())];
        if let Some(cursor) = after {
            query.push(("startAfter", cursor.start_after.as_str()));
            query.push(("startAfterId", cursor.start_after_id.as_str()));
        }
        let answer: Option<Answer> = self
            .call(
                (location_id, used),
                Method::GET,
                "/opportunities/search",
                &query,
                None,
            )
            .await?;
        let Some(answer) = answer else {
            return Ok(OpportunityPage::default());
        };
        let full = answer.opportunities.len() >= PAGE as usize;
        let start_after = answer.meta.start_after.and_then(|v| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s),
            _ => None,
        });
        let next = match (full, start_after, answer.meta.start_after_id) {
            (true, Some(start_after), Some(start_after_id)) if !start_after_id.is_empty() => {
                Some(Cursor {
                    start_after,
                    start_after_id,
                })
            }
            _ => None,
        };
        Ok(OpportunityPage {
            opportunities: answer.opportunities,
            next,
        })
    }
}
