//! Membership as a state: per contact and audience, whether it is a member and the
//! hashes of the row last sent ([`Member`], kept in the state store under
//! [`member_key`]), and the change from what was to what is wanted now
//! ([`change`]), so a change sends exactly the difference and a repeat nothing;
//! and what consecutive changes of one contact come to at Meta ([`net`]).

use serde::{Deserialize, Serialize};

use crate::capi::audience::Row;
use crate::jobs::AudienceJob;

/// What the state store keeps per contact and audience (hashes only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member: bool,
    /// The row last added (what a remove must name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<Row>,
    /// The last change's number (see [`AudienceJob::seq`]).
    pub seq: u64,
}

/// The state key of `contact_id`'s membership of `audience`.
pub fn member_key(audience: &str, location_id: &str, contact_id: &str) -> String {
    format!("member#{audience}#{location_id}#{contact_id}")
}

/// The state key of the last change of `contact_id`'s membership of `audience`
/// that dispatch applied (a number, [`crate::jobs::AudienceJob::seq`]).
pub fn applied_key(audience: &str, location_id: &str, contact_id: &str) -> String {
    format!("applied#{audience}#{location_id}#{contact_id}")
}

/// What a job says of a contact's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A member, with this row.
    Member(Row),
    /// Not a member.
    Out,
}

/// The change from `was` to `now`: rows to remove, the row to add, and the new
/// state; `None` when nothing changes (a repeat, or a contact Meta could not
/// match that was never a member).
pub fn change(was: &Member, now: &Wanted) -> Option<(Vec<Row>, Option<Row>, Member)> {
    let next = |member, row| Member {
        member,
        row,
        seq: was.seq + 1,
    };
    match (now, was.member) {
        (Wanted::Member(row), true) if was.row.as_ref() == Some(row) => None,
        // A row Meta cannot match: a member stays as last sent.
        (Wanted::Member(row), _) if !row.is_usable() => {
            if !was.member {
                crate::telemetry::audience_skipped("no_usable_key");
            }
            None
        }
        (Wanted::Member(row), _) => {
            let remove = if was.member {
                was.row.iter().cloned().collect()
            } else {
                Vec::new()
            };
            Some((remove, Some(row.clone()), next(true, Some(row.clone()))))
        }
        (Wanted::Out, true) => Some((was.row.iter().cloned().collect(), None, next(false, None))),
        (Wanted::Out, false) => None,
    }
}

/// What brings Meta in step with the membership `current`, whatever of `changes`
/// it missed: every row they name that is not the current one out, the current
/// one in; and the number to record as applied (every change up to the
/// membership's, and at least `applied`).
pub fn restate(
    current: &Member,
    changes: &[&AudienceJob],
    applied: u64,
) -> (Vec<Row>, Vec<Row>, u64) {
    let row = current.row.as_ref().filter(|_| current.member);
    let mut out: Vec<Row> = Vec::new();
    for job in changes {
        for named in job.remove.iter().chain(&job.add) {
            if Some(named) != row && !out.contains(named) {
                out.push(named.clone());
            }
        }
    }
    let upto = changes
        .iter()
        .map(|j| j.seq)
        .chain([applied, current.seq])
        .max()
        .unwrap_or(applied);
    (out, row.into_iter().cloned().collect(), upto)
}

/// The net rows of consecutive changes of one contact: all changes before the
/// first were applied, so its `remove` is what Meta holds now, and the last
/// change's `add` is what it must hold after.
pub fn net(changes: &[&AudienceJob]) -> (Vec<Row>, Option<Row>) {
    let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
        return (Vec::new(), None);
    };
    let add = last.add.clone();
    let remove = first
        .remove
        .iter()
        .filter(|row| add.as_ref() != Some(*row))
        .cloned()
        .collect();
    let add = add.filter(|row| !first.remove.contains(row));
    (remove, add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(email: &str) -> Row {
        let mut values = vec![String::new(); crate::capi::audience::SCHEMA.len()];
        values[1] = email.to_owned();
        Row(values)
    }

    #[test]
    fn a_change_sends_exactly_the_difference() {
        let none = Member::default();
        let (remove, add, joined) = change(&none, &Wanted::Member(row("a"))).expect("joins");
        assert!(remove.is_empty());
        assert_eq!(add, Some(row("a")));
        assert_eq!(joined.seq, 1);
        assert_eq!(change(&joined, &Wanted::Member(row("a"))), None, "a repeat");
        let (remove, add, moved) = change(&joined, &Wanted::Member(row("b"))).expect("new e-mail");
        assert_eq!((remove, add), (vec![row("a")], Some(row("b"))));
        let (remove, add, left) = change(&moved, &Wanted::Out).expect("leaves");
        assert_eq!(
            (remove, add, left.member, left.seq),
            (vec![row("b")], None, false, 3)
        );
        assert_eq!(change(&left, &Wanted::Out), None);
        assert_eq!(
            change(&none, &Wanted::Member(row(""))),
            None,
            "no usable key"
        );
        assert_eq!(
            change(&moved, &Wanted::Member(row(""))),
            None,
            "kept as sent"
        );
    }

    /// A queued change number `seq`, removing and adding the rows of these e-mails.
    fn job(seq: u64, remove: &[&str], add: Option<&str>) -> AudienceJob {
        AudienceJob {
            audience: "a".into(),
            source: "s".into(),
            location_id: "l".into(),
            contact_id: "c".into(),
            seq,
            remove: remove.iter().map(|r| row(r)).collect(),
            add: add.map(row),
            history: Default::default(),
            resync: false,
        }
    }

    fn folded(changes: &[AudienceJob]) -> (Vec<Row>, Option<Row>) {
        net(&changes.iter().collect::<Vec<_>>())
    }

    proptest::proptest! {
        /// Whatever a contact goes through, and however its changes are cut into
        /// batches, Meta ends holding exactly the row of its last state.
        #[test]
        fn folded_batches_leave_meta_with_the_last_state(
            states in proptest::collection::vec(proptest::option::of(0u8..4), 1..12),
            cuts in proptest::collection::vec(1usize..4, 1..12),
        ) {
            let mut was = Member::default();
            let mut jobs = Vec::new();
            for state in &states {
                let wanted = match state {
                    Some(r) => Wanted::Member(row(&format!("e{r}"))),
                    None => Wanted::Out,
                };
                if let Some((remove, add, now)) = change(&was, &wanted) {
                    jobs.push(AudienceJob { seq: now.seq, remove, add, ..job(0, &[], None) });
                    was = now;
                }
            }
            let mut meta: std::collections::HashSet<Row> = Default::default();
            let (mut start, mut cut) = (0, cuts.iter().cycle());
            while start < jobs.len() {
                let end = (start + cut.next().copied().unwrap_or(1)).min(jobs.len());
                let batch: Vec<&AudienceJob> = jobs[start..end].iter().collect();
                let (remove, add) = net(&batch);
                for row in &remove {
                    meta.remove(row);
                }
                meta.extend(add);
                start = end;
            }
            let expected: std::collections::HashSet<Row> = was.row.into_iter().collect();
            proptest::prop_assert_eq!(meta, expected);
        }
    }

    #[test]
    fn consecutive_changes_fold_into_their_net_rows() {
        // Joined and left before Meta heard of it: nothing to send.
        let joined_then_left = [job(1, &[], Some("a")), job(2, &["a"], None)];
        assert_eq!(folded(&joined_then_left), (vec![], None));
        // Moved twice and back: Meta holds `a` already.
        let moved_back = [
            job(4, &["a"], Some("b")),
            job(5, &["b"], Some("c")),
            job(6, &["c"], Some("a")),
        ];
        assert_eq!(folded(&moved_back), (vec![], None));
        let moved_then_left = [job(4, &["a"], Some("b")), job(5, &["b"], None)];
        assert_eq!(folded(&moved_then_left), (vec![row("a")], None));
        let left_then_joined_anew = [job(2, &["a"], None), job(3, &[], Some("b"))];
        assert_eq!(
            folded(&left_then_joined_anew),
            (vec![row("a")], Some(row("b")))
        );
    }
}
