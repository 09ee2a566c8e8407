//! Listing a location's contacts through GHL's contact search, page by page: by
//! `page` and `pageLimit` up to the search's reach (10,000), then by the cursor
//! the last contact listed carries (`searchAfter`). The search is only partly
//! documented (`reference/ghl-api.md` §1): where the last contact carries no
//! cursor, the listing stops at the reach and says how many lay beyond.

use serde_json::Value;

use crate::ghl::client::GhlClient;
use crate::ghl::contacts_api::SearchRequest;
use crate::ghl::tokens::TokenSource;
use crate::ghl::{Contact, GhlError};

/// Contacts per search page.
pub const PAGE: u32 = 100;
/// How deep `page`/`pageLimit` paging reaches.
pub const SEARCH_WINDOW: u64 = 10_000;

/// One search's pages, one at a time.
#[derive(Debug)]
pub struct Lister<'g, T> {
    ghl: &'g GhlClient<T>,
    location: String,
    filters: Vec<Value>,
    page: u32,
    after: Option<Value>,
    done: bool,
    /// Contacts listed so far.
    pub listed: u64,
    /// The total GHL gave, if it did.
    pub total: Option<u64>,
    /// Contacts the listing could not reach (beyond 10,000, with no cursor).
    pub beyond: u64,
}

impl<'g, T: TokenSource> Lister<'g, T> {
    /// The contacts of `location` that `filters` (GHL's search filters) keep.
    pub fn new(ghl: &'g GhlClient<T>, location: &str, filters: Vec<Value>) -> Self {
        Lister {
            ghl,
            location: location.to_owned(),
            filters,
            page: 1,
            after: None,
            done: false,
            listed: 0,
            total: None,
            beyond: 0,
        }
    }

    /// The next page; `None` once all are listed.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Contact>>, GhlError> {
        if self.done {
            return Ok(None);
        }
        let search = SearchRequest {
            page: if self.after.is_some() { 0 } else { self.page },
            page_limit: PAGE,
            query: None,
            filters: self.filters.clone(),
            search_after: self.after.clone(),
        };
        let answer = self.ghl.search_contacts(&self.location, &search).await?;
        let count = answer.contacts.len() as u64;
        self.listed += count;
        self.total = answer.total.or(self.total);
        let all_listed = self.total.is_some_and(|t| self.listed >= t);
        if count < u64::from(PAGE) || all_listed {
            self.done = true;
        } else if self.after.is_some() || u64::from(self.page) * u64::from(PAGE) >= SEARCH_WINDOW {
            // Past the reach of `page`: on by the last contact's cursor, if it has one.
            self.after = answer
                .contacts
                .last()
                .and_then(|c| c.extra.get("searchAfter"))
                .filter(|cursor| !cursor.is_null())
                .cloned();
            if self.after.is_none() {
                self.done = true;
                self.beyond = self.total.map_or(0, |t| t.saturating_sub(self.listed));
            }
        } else {
            self.page += 1;
        }
        Ok(Some(answer.contacts))
    }
}
