//! A contact's item (`tags#{location}#{contact}`): its tags, and the jobs about it
//! done lately, so a contact webhook's job is marked done by the write that
//! remembers the tags, with no item of its own (a write unit an event).
//!
//! `done` maps each job's key to when it was done. It holds every job of the
//! contact done since `done_since` (`0`: since the item was made; a contact
//! remembered before jobs were kept here gets the time of its first such write),
//! but for those moved out for room: the item is kept within one write unit
//! (1 KB), the oldest jobs marked apart (`done#{key}`) and `spilled_until` set to
//! when such marks stop mattering. A key missing from `done` is looked up apart
//! only while either could hide it, for [`PROCESSED_TTL`] after.

use aws_sdk_dynamodb::types::AttributeValue;
use ghl_capi::ports::state::{DoneJobs, Remembered, StateError, StateStore};

use super::{DynamoState, Item, PROCESSED_TTL, TAGS_TTL, expires_in, failed, now_seconds};

/// The most a contact's item is let grow to: one write unit.
const ITEM_BUDGET: usize = 1024;

/// The contact's item's key.
fn pk(location_id: &str, contact_id: &str) -> String {
    format!("tags#{location_id}#{contact_id}")
}

/// The contact's tags as its item holds them.
pub(super) fn tags_of(item: &Item) -> Vec<String> {
    match item.get("tags") {
        Some(AttributeValue::L(list)) => {
            list.iter().filter_map(|v| v.as_s().ok().cloned()).collect()
        }
        _ => Vec::new(),
    }
}

fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Jobs by when they were done, then by key: jobs done in the same second (the
/// item's map comes back in no order) leave for room in one order every time.
fn oldest_first(keys: &mut [(String, u64)]) {
    keys.sort_by(|(a, at_a), (b, at_b)| (at_a, a).cmp(&(at_b, b)));
}

/// The contact as its item (if any) holds it, and whether the job `key` is done:
/// `None` when the item cannot tell (the job may be marked apart).
pub(super) fn remembered(item: Option<&Item>, key: &str, now: u64) -> (Remembered, Option<bool>) {
    let Some(item) = item else {
        // Never seen: no job of the contact was done (its tags were always
        // remembered with, or before, a job's mark).
        return (Remembered::default(), Some(false));
    };
    let mut keys: Vec<(String, u64)> = match item.get("done") {
        Some(AttributeValue::M(done)) => done
            .iter()
            .filter_map(|(k, at)| Some((k.clone(), at.as_n().ok()?.parse().ok()?)))
            .collect(),
        _ => Vec::new(),
    };
    oldest_first(&mut keys);
    let jobs = DoneJobs {
        keys,
        since: number(item, "done_since"),
        spilled_until: number(item, "spilled_until").unwrap_or(0),
    };
    let listed = jobs.keys.iter().any(|(k, _)| k == key);
    let whole = jobs
        .since
        .is_some_and(|since| since == 0 || now >= since + PROCESSED_TTL.as_secs())
        && now >= jobs.spilled_until;
    let done = (listed || whole).then_some(listed);
    let remembered = Remembered {
        tags: Some(tags_of(item)),
        done: listed,
        jobs,
    };
    (remembered, done)
}

/// The jobs the contact's item keeps once `key` is done at `now`, with `tags`
/// (`was`: the item as read), and those moved out for room, to mark apart.
pub(super) fn kept(
    pk: &str,
    tags: &[String],
    was: &Remembered,
    key: &str,
    now: u64,
) -> (DoneJobs, Vec<String>) {
    let fresh = |at: u64| now.saturating_sub(at) < PROCESSED_TTL.as_secs();
    let mut keys: Vec<(String, u64)> = (was.jobs.keys.iter())
        .filter(|(k, at)| k != key && fresh(*at))
        .cloned()
        .collect();
    keys.push((key.to_owned(), now));
    oldest_first(&mut keys);
    let since = match (&was.tags, was.jobs.since) {
        (None, _) => 0,
        (Some(_), Some(since)) => since,
        (Some(_), None) => now,
    };
    let mut jobs = DoneJobs {
        keys,
        since: Some(since),
        spilled_until: was.jobs.spilled_until,
    };
    let mut spilled = Vec::new();
    while size(pk, tags, &jobs) > ITEM_BUDGET && !jobs.keys.is_empty() {
        spilled.push(jobs.keys.remove(0).0);
        jobs.spilled_until = now + PROCESSED_TTL.as_secs();
    }
    (jobs, spilled)
}

/// The item's attributes for `tags` and `jobs` (beside its key and TTL).
pub(super) fn attributes(tags: &[String], jobs: &DoneJobs) -> Item {
    let n = |v: u64| AttributeValue::N(v.to_string());
    let done = (jobs.keys.iter())
        .map(|(k, at)| (k.clone(), n(*at)))
        .collect();
    let mut item = Item::new();
    let tags = tags.iter().cloned().map(AttributeValue::S).collect();
    item.insert("tags".into(), AttributeValue::L(tags));
    item.insert("done".into(), AttributeValue::M(done));
    item.insert("done_since".into(), n(jobs.since.unwrap_or(0)));
    item.insert("spilled_until".into(), n(jobs.spilled_until));
    item
}

/// The item's size as DynamoDB bills it, at most: names and values, a number's
/// 21 bytes, three bytes a list or map and one an element.
fn size(pk: &str, tags: &[String], jobs: &DoneJobs) -> usize {
    const NUMBER: usize = 21;
    let tags: usize = tags.iter().map(|t| t.len() + 1).sum();
    let done: usize = jobs.keys.iter().map(|(k, _)| k.len() + NUMBER + 1).sum();
    let names = "pk".len() + "tags".len() + "done".len() + "expires_at".len();
    let names = names + "done_since".len() + "spilled_until".len();
    names + pk.len() + 3 + tags + 3 + done + 3 * NUMBER
}

impl DynamoState {
    pub(super) async fn contact_tags(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Option<Vec<String>>, StateError> {
        let item = self
            .get(AttributeValue::S(pk(location_id, contact_id)), true)
            .await?;
        Ok(item.as_ref().map(tags_of))
    }

    pub(super) async fn update_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<(), StateError> {
        // Updated, not put: the jobs kept with the contact stay.
        let tags = AttributeValue::L(tags.iter().cloned().map(AttributeValue::S).collect());
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk(location_id, contact_id)))
            .update_expression("SET tags = :tags, expires_at = :expires_at")
            .expression_attribute_values(":tags", tags)
            .expression_attribute_values(":expires_at", expires_in(TAGS_TTL))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(e.into_service_error()))
    }

    pub(super) async fn read_contact(
        &self,
        location_id: &str,
        contact_id: &str,
        key: &str,
    ) -> Result<Remembered, StateError> {
        let item = self
            .get(AttributeValue::S(pk(location_id, contact_id)), true)
            .await?;
        let (mut remembered, done) = remembered(item.as_ref(), key, now_seconds());
        remembered.done = match done {
            Some(done) => done,
            None => self.processed(key).await?,
        };
        Ok(remembered)
    }

    pub(super) async fn write_contact_done(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
        key: &str,
        was: &Remembered,
    ) -> Result<(), StateError> {
        let pk = pk(location_id, contact_id);
        let (jobs, spilled) = kept(&pk, tags, was, key, now_seconds());
        // Marked apart before the item drops them, so none is ever unmarked.
        for key in spilled {
            self.mark_processed(&key).await?;
        }
        let mut item = attributes(tags, &jobs);
        item.insert("pk".into(), AttributeValue::S(pk));
        item.insert("expires_at".into(), expires_in(TAGS_TTL));
        self.put(item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: u64 = 7 * 24 * 3600;

    fn item(done: &[(&str, u64)], since: Option<u64>, spilled_until: u64) -> Item {
        let jobs = DoneJobs {
            keys: done.iter().map(|(k, at)| (k.to_string(), *at)).collect(),
            since,
            spilled_until,
        };
        let mut item = attributes(&["vip".into()], &jobs);
        if since.is_none() {
            item.remove("done_since");
        }
        item
    }

    #[test]
    fn a_listed_job_is_done_and_one_missing_is_not_once_the_list_is_whole() {
        let now = 100 * WEEK;
        let whole = item(&[("w1", now - 60)], Some(0), 0);
        assert_eq!(remembered(Some(&whole), "w1", now).1, Some(true));
        assert_eq!(remembered(Some(&whole), "w2", now).1, Some(false));
        assert_eq!(remembered(None, "w2", now).1, Some(false), "never seen");
    }

    #[test]
    fn a_list_begun_lately_or_spilled_lately_cannot_say_a_job_is_not_done() {
        let now = 100 * WEEK;
        let before = item(&[], None, 0);
        assert_eq!(
            remembered(Some(&before), "w0", now).1,
            None,
            "as written before"
        );
        let lately = item(&[("w1", now)], Some(now - WEEK), 0);
        assert_eq!(remembered(Some(&lately), "w0", now).1, None);
        assert_eq!(remembered(Some(&lately), "w1", now).1, Some(true));
        let long_ago = item(&[], Some(now - 3 * WEEK), 0);
        assert_eq!(remembered(Some(&long_ago), "w0", now).1, Some(false));
        let spilled = item(&[], Some(0), now + WEEK);
        assert_eq!(remembered(Some(&spilled), "w0", now).1, None);
    }

    #[test]
    fn the_item_stays_within_a_write_unit_its_oldest_jobs_spilled() {
        let now = 100 * WEEK;
        let tags: Vec<String> = vec!["lead".into(), "vip".into()];
        let mut was = Remembered::default();
        let mut spilled_all = Vec::new();
        for n in 0..40u64 {
            let key = format!("{:036}", n);
            let (jobs, spilled) = kept("tags#loc#c1", &tags, &was, &key, now + n);
            assert!(size("tags#loc#c1", &tags, &jobs) <= ITEM_BUDGET);
            spilled_all.extend(spilled);
            was = Remembered {
                tags: Some(tags.clone()),
                done: false,
                jobs,
            };
        }
        assert!(was.jobs.keys.len() >= 10, "{}", was.jobs.keys.len());
        assert_eq!(spilled_all.len() + was.jobs.keys.len(), 40, "none lost");
        assert_eq!(spilled_all[0], format!("{:036}", 0), "the oldest first");
        assert_eq!(
            was.jobs.since,
            Some(0),
            "made this way: whole from the start"
        );
        assert_eq!(was.jobs.spilled_until, now + 39 + PROCESSED_TTL.as_secs());
    }

    #[test]
    fn jobs_done_in_one_second_are_kept_in_one_order_whatever_the_map_gives() {
        let now = 100 * WEEK;
        let read = item(&[("w2", now), ("w1", now), ("w0", now - 1)], Some(0), 0);
        let (was, _) = remembered(Some(&read), "w3", now);
        let keys: Vec<&str> = was.jobs.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["w0", "w1", "w2"]);
    }

    #[test]
    fn jobs_past_their_keep_are_dropped_and_an_old_item_starts_its_list_now() {
        let now = 100 * WEEK;
        let was = Remembered {
            tags: Some(vec![]),
            done: false,
            jobs: DoneJobs {
                keys: vec![("old".into(), now - 3 * WEEK), ("new".into(), now - 60)],
                since: None,
                spilled_until: 0,
            },
        };
        let (jobs, spilled) = kept("pk", &[], &was, "w", now);
        let keys: Vec<&str> = jobs.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["new", "w"]);
        assert!(spilled.is_empty());
        assert_eq!(jobs.since, Some(now), "jobs of before may be marked apart");
    }
}
