//! The outage soak's workload and its accounting, the same for both modes (the
//! Lambda handlers over moto, and `ghl-capi serve`): what is sent, what Meta must
//! end up holding, and which dead letters are allowed.
//!
//! Each webhook of the workload is one of:
//! - a new contact tagged `vip` (most): `Lead` and `CompleteRegistration`, to two
//!   pixels: four events;
//! - one in 500, an update that fires the `refused` rule: an event Meta refuses,
//!   to each pixel (two poison events per 4,000 or so: one per 1,000 events);
//! - one in 1,000, a new contact GHL no longer has (`gone-…`): one letter.
//!
//! The webhooks come from ten locations in turn, as an agency's do, so GHL's
//! per-location rate limit paces each location and not the whole soak.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::fixtures::{contact, webhook};

/// The second pixel's dataset: every location's events go to both.
pub const BACKUP_DATASET: &str = "2222222222";

/// The locations the webhooks come from; each needs a GHL token.
pub const LOCATIONS: [&str; 10] = [
    "soak-a", "soak-b", "soak-c", "soak-d", "soak-e", "soak-f", "soak-g", "soak-h", "soak-i",
    "soak-j",
];

/// The letters a soak may end with: permanent causes only.
pub const PERMANENT: [&str; 2] = ["refused_by_meta", "contact_not_found"];

/// The fixture mapping's additions: the backup pixel (its token where `token`
/// says) and a rule whose events Meta refuses.
pub fn extra_mapping(token: &str) -> String {
    format!(
        "\n[[pixels]]\nname = \"backup\"\ndataset_id = \"{BACKUP_DATASET}\"\naccess_token = {token}\n\
         test_event_code = \"TEST42\"\n\n[[rules]]\nname = \"refused\"\ntrigger = \"contact.updated\"\n\
         event_name = \"Refused\"\n"
    )
}

/// How many events a soak sends: `SOAK_EVENTS`, else `default`.
pub fn events_wanted(default: usize) -> usize {
    std::env::var("SOAK_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// What a soak sends, and what must come of it.
#[derive(Debug)]
pub struct Workload {
    /// Each webhook's id and signed-to-be body, in sending order.
    pub webhooks: Vec<(String, Vec<u8>)>,
    /// Events Meta must acknowledge, each once.
    pub expected_events: usize,
    /// Dead letters by code.
    pub expected_letters: BTreeMap<String, usize>,
}

impl Workload {
    /// A workload of at least `events` events Meta takes.
    pub fn new(events: usize) -> Self {
        let mut workload = Workload {
            webhooks: Vec::new(),
            expected_events: 0,
            expected_letters: BTreeMap::new(),
        };
        let mut i = 0;
        while workload.expected_events < events {
            i += 1;
            let id = format!("soak-{i}");
            let (kind, contact_id, letters) = if i % 500 == 0 {
                (
                    "ContactUpdate",
                    format!("c{i}"),
                    Some(("refused_by_meta", 2)),
                )
            } else if i % 1000 == 250 {
                (
                    "ContactCreate",
                    format!("gone-{i}"),
                    Some(("contact_not_found", 1)),
                )
            } else {
                workload.expected_events += 4;
                ("ContactCreate", format!("c{i}"), None)
            };
            if let Some((code, n)) = letters {
                *workload
                    .expected_letters
                    .entry(code.to_owned())
                    .or_default() += n;
            }
            let mut fields = contact(&contact_id, &format!("{contact_id}@example.com"), &["vip"]);
            fields["locationId"] = LOCATIONS[i % LOCATIONS.len()].into();
            workload
                .webhooks
                .push((id.clone(), webhook(kind, &id, fields)));
        }
        workload
    }

    /// Tallies what came of it: `delivered` is every event Meta answered `200` for,
    /// as (dataset, event id); `letters` every dead letter's code.
    pub fn tally(
        &self,
        accepted: usize,
        delivered: &[(String, String)],
        letters: &[String],
        elapsed: Duration,
    ) -> Report {
        let mut seen: HashMap<&(String, String), usize> = HashMap::new();
        for event in delivered {
            *seen.entry(event).or_default() += 1;
        }
        let mut by_code = BTreeMap::new();
        for code in letters {
            *by_code.entry(code.clone()).or_default() += 1;
        }
        Report {
            webhooks: self.webhooks.len(),
            accepted,
            expected: self.expected_events,
            delivered: seen.len(),
            duplicated: seen.values().filter(|n| **n > 1).count(),
            lost: self.expected_events.saturating_sub(seen.len()),
            letters: by_code,
            elapsed,
        }
    }
}

/// A soak's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub webhooks: usize,
    pub accepted: usize,
    pub expected: usize,
    /// Distinct events Meta acknowledged.
    pub delivered: usize,
    /// Events Meta acknowledged more than once.
    pub duplicated: usize,
    pub lost: usize,
    pub letters: BTreeMap<String, usize>,
    pub elapsed: Duration,
}

impl Report {
    /// Panics, with the figures, unless nothing was lost, duplicated or
    /// dead-lettered for anything but a permanent cause, and the letters are the
    /// ones the workload makes.
    pub fn check(&self, workload: &Workload) {
        self.check_with_repeats(workload, 0);
    }

    /// As [`Report::check`], with at most `repeats` events acknowledged twice: a
    /// `kill -9` between Meta's answer and the store's note of it sends that one
    /// request's events again, with their ids, which Meta drops as repeats.
    pub fn check_with_repeats(&self, workload: &Workload, repeats: usize) {
        assert_eq!(
            self.accepted, self.webhooks,
            "every webhook accepted: {self}"
        );
        assert_eq!(self.lost, 0, "nothing lost: {self}");
        assert!(
            self.duplicated <= repeats,
            "nothing twice beyond the {repeats} a kill may repeat: {self}"
        );
        assert_eq!(self.delivered, self.expected, "{self}");
        for code in self.letters.keys() {
            assert!(
                PERMANENT.contains(&code.as_str()),
                "a letter for {code}: {self}"
            );
        }
        assert_eq!(self.letters, workload.expected_letters, "{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} webhooks, {} accepted; {} events expected, {} delivered, {} duplicated, {} lost; \
             dead letters {:?}; {:.1} s",
            self.webhooks,
            self.accepted,
            self.expected,
            self.delivered,
            self.duplicated,
            self.lost,
            self.letters,
            self.elapsed.as_secs_f64()
        )
    }
}

/// The (dataset, event id) of each event in `events` (a Meta stand-in's), sent to
/// `dataset`.
pub fn delivered_to(dataset: &str, events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                dataset.to_owned(),
                e["event_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// When each contact's webhook was accepted, by its external id as Meta gets it
/// (hashed): to tell which events were held through an outage, and how long a
/// contact's first event took to reach Meta.
#[derive(Debug, Default)]
pub struct Accepted(std::collections::HashMap<String, std::time::Instant>);

impl Accepted {
    /// `body`'s contact was accepted now.
    pub fn now(&mut self, body: &[u8]) {
        let contact = serde_json::from_slice::<Value>(body).ok();
        let id = contact
            .as_ref()
            .and_then(|c| c["id"].as_str())
            .unwrap_or_default();
        let hashed = ghl_capi::normalize::sha256_hex(id).to_string();
        self.0.entry(hashed).or_insert_with(std::time::Instant::now);
    }

    /// Each contact's end-to-end lag: from its first webhook's acceptance to its
    /// first event's arrival at Meta (`events`, with when each arrived), sorted.
    pub fn first_event_lags(&self, events: &[(std::time::Instant, Value)]) -> Vec<Duration> {
        let mut first: std::collections::HashMap<&str, std::time::Instant> = Default::default();
        for (at, event) in events {
            let contact = event["user_data"]["external_id"][0].as_str();
            if let Some(contact) = contact.filter(|c| self.0.contains_key(*c)) {
                let arrived = first.entry(contact).or_insert(*at);
                *arrived = (*arrived).min(*at);
            }
        }
        let mut lags: Vec<Duration> = (first.iter())
            .map(|(contact, at)| at.saturating_duration_since(self.0[*contact]))
            .collect();
        lags.sort();
        lags
    }

    /// How long after `back` (a partner's return) the last event of a contact
    /// accepted before it reached Meta (`events`, with when each arrived): the
    /// outage's drain. `None` when no such event came after the return.
    pub fn drain(
        &self,
        back: std::time::Instant,
        events: &[(std::time::Instant, Value)],
    ) -> Option<Duration> {
        events
            .iter()
            .filter(|(at, _)| *at > back)
            .filter(|(_, e)| {
                let contact = e["user_data"]["external_id"][0]
                    .as_str()
                    .unwrap_or_default();
                self.0.get(contact).is_some_and(|accepted| *accepted < back)
            })
            .map(|(at, _)| *at - back)
            .max()
    }
}
