//! Listing a location's contacts through GHL's contact search, page by page: by
//! `page` and `pageLimit` up to the search's reach (10,000), then by the cursor
//! the last contact listed carries (`searchAfter`). The search is only partly
//! documented (`reference/ghl-api.md` §1): where the last contact carries no
//! cursor, the listing stops at the reach and says how many lay beyond.
//!
//! GHL's trouble is ridden out page by page ([`Patience`]): a `429` waits GHL's
//! interval, a window kept for real-time enrichment its end, an outage doubling
//! waits; only after as many tries in a row does the listing fail (run it again).
//!
//! Listing by change ([`Lister::changed_since`], for reconciliation) or by
//! creation over a period ([`Lister::by_time`], for a backfill) pages by key, not
//! by offset: each page asks afresh for the contacts changed at or after the
//! last change listed, oldest first. A contact changed while the listing runs moves
//! to the end and is listed again there; no other contact shifts into a page
//! already listed, as it would by offset. The range filter and the sort are
//! documented only second-hand (`reference/ghl-api.md` §1.4): when a page comes
//! back unsorted, or without change times, the listing goes on by offset under the
//! same filter, and [`Lister::listed_before`] stops vouching for a point; when
//! GHL refuses the filter, every contact is listed, by page.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::ghl::budget::{MAX_WAIT, Use};
use crate::ghl::client::GhlClient;
use crate::ghl::contacts_api::SearchRequest;
use crate::ghl::opportunities_api::{Cursor, Opportunity};
use crate::ghl::tokens::TokenSource;
use crate::ghl::{Contact, GhlError};

/// The longest wait for the budget a listing sits out: a window's.
const WINDOW_MS: u64 = MAX_WAIT.as_millis() as u64;
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

/// The time of a contact a listing is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Its last change (`dateUpdated`): reconciliation.
    Updated,
    /// Its creation (`dateAdded`): a backfill of a period.
    Added,
}

impl Stamp {
    fn field(self) -> &'static str {
        match self {
            Stamp::Updated => "dateUpdated",
            Stamp::Added => "dateAdded",
        }
    }

    /// The contact's time of this kind.
    pub fn of(self, contact: &Contact) -> Option<DateTime<Utc>> {
        match self {
            Stamp::Updated => contact.date_updated(),
            Stamp::Added => contact.date_added(),
        }
    }
}

/// The filter and sort of contacts whose `stamp` is at or after `from` (and at or
/// before `until`), oldest first.
pub fn by_time(
    stamp: Stamp,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> (Vec<Value>, Vec<Value>) {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut range = json!({"gte": at(from)});
    if let Some(until) = until {
        range["lte"] = json!(at(until));
    }
    (
        vec![json!({"field": stamp.field(), "operator": "range", "value": range})],
        vec![json!({"field": stamp.field(), "direction": "asc"})],
    )
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
    /// Whose share of GHL's budget it spends.
    used: Use,
    /// Listing by change: the earliest change the next page may hold, and whether
    /// GHL's pages have kept to it (sorted, with change times) so far.
    since: Option<(DateTime<Utc>, bool)>,
    /// What that time is, and where the listing ends.
    stamp: Stamp,
    until: Option<DateTime<Utc>>,
    /// The contacts listed at that time already, left out when the next page
    /// (which starts at it) lists them again.
    at_key: Vec<String>,
    /// The least time between two requests: the listing's share of GHL's budget.
    pace: Duration,
    asked: Option<Instant>,
    /// Contacts listed so far.
    pub listed: u64,
    /// The total GHL gave, if it did.
    pub total: Option<u64>,
    /// Contacts the listing could not reach (beyond 10,000, with no cursor).
    pub beyond: u64,
}

impl<'g, T: TokenSource> Lister<'g, T> {
    /// The contacts of `location` that `filters` (GHL's search filters) keep.
    pub fn new(ghl: &'g GhlClient<T>, (location, used): (&str, Use), filters: Vec<Value>) -> Self {
        Lister {
            ghl,
            location: location.to_owned(),
            filters,
            page: 1,
            after: None,
            done: false,
            patience: Patience::default(),
            used,
            since: None,
            stamp: Stamp::Updated,
            until: None,
            at_key: Vec::new(),
            pace: Duration::ZERO,
            asked: None,
            listed: 0,
            total: None,
            beyond: 0,
        }
    }

    /// The contacts of `location` changed at or after `since`, oldest change first,
    /// paged by key (see the module's documentation).
    /// Reconciliation's listing.
    pub fn changed_since(ghl: &'g GhlClient<T>, location: &str, since: DateTime<Utc>) -> Self {
        Lister::by_time(ghl, (location, Use::Reconcile), Stamp::Updated, since, None)
    }

    /// The contacts of `location` whose `stamp` lies from `from` to `until`, oldest
    /// first, paged by key. When GHL refuses the filter, every contact is listed:
    /// the caller keeps those of the period.
    pub fn by_time(
        ghl: &'g GhlClient<T>,
        at: (&str, Use),
        stamp: Stamp,
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Self {
        Lister {
            since: Some((from, true)),
            stamp,
            until,
            ..Lister::new(ghl, at, Vec::new())
        }
    }

    /// Going on from where an earlier listing stopped: `from` was its
    /// [`Lister::listed_before`], these the contacts it had listed at that time.
    pub fn resuming(mut self, at_key: Vec<String>) -> Self {
        self.at_key = at_key;
        self
    }

    /// The contacts listed at [`Lister::listed_before`]'s time, for a resumption.
    pub fn at_key(&self) -> &[String] {
        &self.at_key
    }

    /// With `patience` in place of the default.
    pub fn patient(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
    }

    /// Asking at most once every `pace`.
    pub fn paced(mut self, pace: Duration) -> Self {
        self.pace = pace;
        self
    }

    /// Listing by change, while GHL keeps to its order: every change before this
    /// time has been listed in the pages returned so far.
    pub fn listed_before(&self) -> Option<DateTime<Utc>> {
        self.since.filter(|(_, keyed)| *keyed).map(|(at, _)| at)
    }

    /// The next page; `None` once all are listed.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Contact>>, GhlError> {
        if self.done {
            return Ok(None);
        }
        let (mut filters, mut sort) = (self.filters.clone(), Vec::new());
        if let Some((since, _)) = self.since {
            let (by_change, oldest_first) = by_time(self.stamp, since, self.until);
            filters.extend(by_change);
            sort = oldest_first;
        }
        let search = SearchRequest {
            page: if self.after.is_some() { 0 } else { self.page },
            page_limit: PAGE,
            query: None,
            filters,
            search_after: self.after.clone(),
            sort,
        };
        if let Some(asked) = self.asked {
            tokio::time::sleep_until(asked + self.pace).await;
        }
        self.asked = Some(Instant::now());
        let mut answer = match self.search(&search).await {
            // GHL does not take the range filter or the sort: every contact, by page.
            Err(GhlError::Rejected { .. }) if self.since.is_some() && self.listed == 0 => {
                tracing::warn!(
                    location_id = self.location,
                    "GHL's search refused the filter by change: listing every contact"
                );
                self.since = None;
                return Box::pin(self.next_page()).await;
            }
            answer => answer?,
        };
        let count = answer.contacts.len() as u64;
        if let Some((key, _)) = self.since {
            let (at_key, stamp) = (&self.at_key, self.stamp);
            answer
                .contacts
                .retain(|c| !(stamp.of(c) == Some(key) && at_key.contains(&c.id)));
        }
        self.listed += answer.contacts.len() as u64;
        if self.since.is_some() {
            // Each page by key is a search of its own: its total is what is left.
            self.total = self.total.or(answer.total);
        } else {
            self.total = answer.total.or(self.total);
        }
        let all_listed = self.since.is_none() && self.total.is_some_and(|t| self.listed >= t);
        if count < u64::from(PAGE) || all_listed {
            self.done = true;
        } else if let Some((since, true)) = self.since {
            match next_key(&answer.contacts, self.stamp, since) {
                // On from the last change listed, afresh.
                Some(last) if last > since => {
                    (self.since, self.page) = (Some((last, true)), 1);
                    self.at_key.clear();
                    self.at_key.extend(at(&answer.contacts, self.stamp, last));
                }
                // A whole page changed at one instant: the next page of it.
                Some(_) => {
                    self.page += 1;
                    self.at_key.extend(at(&answer.contacts, self.stamp, since));
                }
                None => {
                    tracing::warn!(
                        location_id = self.location,
                        "GHL's search did not keep to the order of change: listing on by page"
                    );
                    self.since = Some((since, false));
                    self.page += 1;
                }
            }
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

    /// One page, asked again through GHL's limits and outages.
    async fn search(
        &self,
        search: &SearchRequest,
    ) -> Result<crate::ghl::contacts_api::SearchPage, GhlError> {
        let ask = || (self.ghl).search_contacts((&self.location, self.used), search);
        self.patience.ask(&self.location, self.listed, ask).await
    }
}

/// A location's opportunities, whole, a page at a time from a cursor (GHL's
/// opportunity search has no documented filter by change), paced and ridden
/// through GHL's trouble as the contacts' listing is.
#[derive(Debug)]
pub struct OpportunityPages<'g, T: TokenSource> {
    ghl: &'g GhlClient<T>,
    location: String,
    used: Use,
    /// Where the next page starts (`None` with `ended` unset: the first).
    after: Option<Cursor>,
    ended: bool,
    /// Opportunities listed so far.
    pub listed: u64,
    asked: Option<Instant>,
    pace: Duration,
    patience: Patience,
}

impl<'g, T: TokenSource> OpportunityPages<'g, T> {
    /// `location`'s opportunities from `after` (the first page when `None`),
    /// listed for `used`.
    pub fn new(
        ghl: &'g GhlClient<T>,
        (location, used): (&str, Use),
        after: Option<Cursor>,
        pace: Duration,
        patience: Patience,
    ) -> Self {
        OpportunityPages {
            ghl,
            location: location.to_owned(),
            used,
            after,
            ended: false,
            listed: 0,
            asked: None,
            pace,
            patience,
        }
    }

    /// The next page; `None` once the last was given.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Opportunity>>, GhlError> {
        if self.ended {
            return Ok(None);
        }
        if let Some(asked) = self.asked {
            tokio::time::sleep_until(asked + self.pace).await;
        }
        self.asked = Some(Instant::now());
        let (ghl, location, after) = (self.ghl, &self.location, self.after.as_ref());
        let ask = || ghl.search_opportunities((location, self.used), after);
        let page = self.patience.ask(location, self.listed, ask).await?;
        self.listed += page.opportunities.len() as u64;
        self.ended = page.next.is_none();
        self.after = page.next;
        Ok(Some(page.opportunities))
    }

    /// Where the page after those given starts (`None` once they were all given).
    pub fn after(&self) -> Option<&Cursor> {
        self.after.as_ref()
    }
}

impl Patience {
    /// `call`'s answer, asked again through GHL's limits and outages (each logged,
    /// with how many of `location`'s records were `listed` so far), up to `tries`.
    /// Retries are not paced: GHL's own interval, or the outage's wait, is longer.
    pub async fn ask<R, F, Fut>(&self, location: &str, listed: u64, call: F) -> Result<R, GhlError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<R, GhlError>>,
    {
        let mut outage_wait = self.outage_wait;
        let mut tries = 1;
        loop {
            let error = match call().await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let wait = match &error {
                GhlError::RateLimited { retry_after_ms } => Duration::from_millis(*retry_after_ms),
                // A window kept for enrichment passes soon; a day kept for it does
                // not: the listing stops, to go on next time.
                GhlError::Reserved { retry_after_ms, .. } if *retry_after_ms <= WINDOW_MS => {
                    Duration::from_millis(*retry_after_ms)
                }
                GhlError::Unavailable { .. } => {
                    outage_wait *= 2;
                    outage_wait / 2
                }
                _ => return Err(error),
            };
            if tries >= self.tries {
                return Err(error);
            }
            tracing::warn!(
                location_id = location,
                listed,
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

/// The ids of the contacts whose `stamp` is `key`.
fn at(contacts: &[Contact], stamp: Stamp, key: DateTime<Utc>) -> Vec<String> {
    contacts
        .iter()
        .filter(|c| stamp.of(c) == Some(key))
        .map(|c| c.id.clone())
        .collect()
}

/// The last `stamp` of a page sorted by it and starting no earlier than `since`;
/// `None` when it is not.
fn next_key(contacts: &[Contact], stamp: Stamp, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut last = since;
    for contact in contacts {
        let at = stamp.of(contact)?;
        if at < last {
            return None;
        }
        last = at;
    }
    Some(last)
}
