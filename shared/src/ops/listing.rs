//! Listing a location's contacts through GHL's contact search, page by page: by
//! `page` and `pageLimit` up to the search's reach (10,000), then by the cursor
//! the last contact listed carries (`searchAfter`). The search is only partly
//! documented (`reference/ghl-api.md` §1): where the last contact carries no
//! cursor, the listing stops at the reach and says how many lay beyond.
//!
//! GHL's trouble is ridden out page by page ([`Patience`]): a `429` waits the
//! interval GHL names and asks again; an outage or a timeout waits, doubling, and
//! asks again; only after as many tries in a row does the listing fail (an
//! operator's command: run again, it lists afresh).

use std::time::Duration;

use serde_json::Value;

use crate::ghl::client::GhlClient;
use crate::ghl::contacts_api::SearchRequest;
use crate::ghl::tokens::TokenSource;
use crate::ghl::{Contact, GhlError};

/// Contacts per search page.
pub const PAGE: u32 = 100;
/// How deep `page`/`pageLimit` paging reaches.
pub const SEARCH_WINDOW: u64 = 10_000;

/// How long a listing waits out GHL before it gives up on a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Tries of one page, the first included.
    pub tries: u32,
    /// The first wait after an outage or a timeout; each next one doubles.
    pub outage_wait: Duration,
}

impl Default for Patience {
    /// Eight tries: about four minutes of outage, or GHL's limit hit seven times.
    fn default() -> Self {
        Patience {
            tries: 8,
            outage_wait: Duration::from_secs(1),
        }
    }
}

/// One search's pages, one at a time.
#[derive(Debug)]
pub struct Lister<'g, T> {
    ghl: &'g GhlClient<T>,
    location: String,
    filters: Vec<Value>,
    page: u32,
    after: Option<Value>,
    done: bool,
    patience: Patience,
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
            patience: Patience::default(),
            listed: 0,
            total: None,
            beyond: 0,
        }
    }

    /// With `patience` in place of the default.
    pub fn patient(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
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
        let answer = self.search(&search).await?;
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

    /// One page, asked again through GHL's limits and outages (logged, each).
    async fn search(
        &self,
        search: &SearchRequest,
    ) -> Result<crate::ghl::contacts_api::SearchPage, GhlError> {
        let mut outage_wait = self.patience.outage_wait;
        let mut tries = 1;
        loop {
            let error = match self.ghl.search_contacts(&self.location, search).await {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            let wait = match &error {
                GhlError::RateLimited { retry_after_ms } => Duration::from_millis(*retry_after_ms),
                GhlError::Unavailable { .. } => {
                    outage_wait *= 2;
                    outage_wait / 2
                }
                _ => return Err(error),
            };
            if tries >= self.patience.tries {
                return Err(error);
            }
            tracing::warn!(
                location_id = self.location,
                listed = self.listed,
                tries,
                wait_ms = wait.as_millis() as u64,
                error = %crate::error::chain(&error),
                "GHL could not give the next page: asking again"
            );
            tokio::time::sleep(wait).await;
            tries += 1;
        }
    }
}
