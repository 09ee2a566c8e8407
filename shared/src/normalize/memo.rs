//! Digests of values that repeat from contact to contact. A backfill of 100,000
//! contacts sees the same few countries, states, cities and first names again and
//! again; each is normalised and hashed once per thread, then looked up. The memo
//! lives only in the thread's memory, bounded; it is never persisted or logged.

use std::cell::RefCell;

use foldhash::HashMap;

use super::{Field, HexDigest, normalize};

/// Values remembered per field and thread before that field's memo starts afresh:
/// enough for the common values of a real contact list, a few hundred KiB at most.
const CAPACITY: usize = 2048;

thread_local! {
    // foldhash, several times faster than SipHash on keys this short; the cap
    // bounds what deliberately colliding values could cost.
    static MEMO: RefCell<[HashMap<Box<str>, Option<HexDigest>>; Field::ALL.len()]> =
        RefCell::new(Default::default());
}

/// Whether `field`'s values repeat across contacts often enough to remember them.
/// Emails, phones, external ids and birth dates are nearly unique per contact, and
/// a phone's digest also depends on the contact's country.
fn repeats(field: Field) -> bool {
    matches!(
        field,
        Field::FirstName
            | Field::LastName
            | Field::Gender
            | Field::City
            | Field::State
            | Field::Zip
            | Field::Country
    )
}

/// What Meta receives for `input` as `field`: [`normalize`] then
/// [`Normalized::sha256`](super::Normalized::sha256), or `None` for a value that
/// must not be sent.
pub fn digest(field: Field, input: &str, country: Option<&str>) -> Option<HexDigest> {
    let compute = || normalize(field, input, country).map(|n| n.sha256());
    if !repeats(field) {
        return compute();
    }
    MEMO.with_borrow_mut(|memo| {
        let seen = &mut memo[field as usize];
        if let Some(known) = seen.get(input) {
            return *known;
        }
        let digest = compute();
        if seen.len() == CAPACITY {
            // Starting afresh keeps memory bounded without bookkeeping per lookup;
            // the common values are back after a few contacts.
            seen.clear();
        }
        seen.insert(input.into(), digest);
        digest
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(field: Field, input: &str) -> Option<HexDigest> {
        normalize(field, input, None).map(|n| n.sha256())
    }

    #[test]
    fn a_remembered_digest_is_the_one_computed() {
        for (field, input) in [
            (Field::City, "San Francisco"),
            (Field::State, " California "),
            (Field::Country, "United States"),
            (Field::FirstName, "JOSÉ"),
            (Field::Zip, "94105-1234"),
            (Field::City, "  "),
            (Field::Email, "a@b.co"),
        ] {
            let first = digest(field, input, None);
            assert_eq!(first, direct(field, input), "{field} {input:?}");
            assert_eq!(digest(field, input, None), first, "{field} {input:?} again");
        }
    }

    #[test]
    fn a_full_memo_starts_afresh_and_stays_right() {
        for i in 0..CAPACITY + 10 {
            let city = format!("Town {i}");
            assert_eq!(digest(Field::City, &city, None), direct(Field::City, &city));
        }
        let remembered = MEMO.with_borrow(|m| m[Field::City as usize].len());
        assert!(remembered <= CAPACITY, "{remembered} cities remembered");
        assert_eq!(
            digest(Field::City, "Town 0", None),
            direct(Field::City, "Town 0")
        );
    }
}
