//! Membership as a state: per contact and audience, whether it is a member and the
//! hashes of the row last sent ([`Member`], kept in the state store under
//! [`member_key`]), and the change from what was to what is wanted now
//! ([`change`]), so a change sends exactly the difference and a repeat nothing.

use serde::{Deserialize, Serialize};

use crate::capi::audience::Row;

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
}
