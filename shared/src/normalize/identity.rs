//! Identifiers: e-mail, phone and `external_id`.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::chars::{collect_sized, is_js_space};
use super::place::country_code;

/// Trimmed and lowercased; kept only if it is a plain ASCII address (param-builder's
/// rule: non-ASCII addresses are rejected rather than guessed at).
pub(super) fn email(trimmed: &str) -> Option<String> {
    let lower = trimmed.to_ascii_lowercase();
    is_plain_address(&lower).then_some(lower)
}

fn is_plain_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    // Bytes, not chars: every allowed character is ASCII, and a byte of a
    // multi-byte character fails the same tests its character would. Split by a
    // closure, since `str` patterns set up a search per part, in parts this short.
    fn parts(text: &str) -> impl DoubleEndedIterator<Item = &[u8]> {
        text.as_bytes().split(|b| *b == b'.')
    }
    let atext = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(b);
    let local_ok = parts(local).all(|atom| !atom.is_empty() && atom.iter().all(atext));
    let label_ok = |l: &[u8]| {
        !l.is_empty()
            && !l.starts_with(b"-")
            && !l.ends_with(b"-")
            && l.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    };
    let mut labels = parts(domain);
    let tld_ok = labels
        .next_back()
        .is_some_and(|t| t.len() >= 2 && t.iter().all(u8::is_ascii_alphabetic));
    // The top-level label and at least one before it.
    let mut labels = labels.peekable();
    local_ok && tld_ok && labels.peek().is_some() && labels.all(label_ok)
}

/// Digits with the country calling code and no leading zeros. A valid number
/// written in national form gets the calling code of `country` (parsed by
/// `phonenumber`, which also drops trunk prefixes such as the UK's `0`); without a
/// usable country, or when the digits are no valid number there, they are kept as
/// written.
pub(super) fn phone(trimmed: &str, country: Option<&str>) -> Option<String> {
    // A plain number written with `+` already is E.164: its digits, less a `(0)`
    // trunk marker (`+44 (0)20 …`). That is what the library would return, without
    // its cost; anything else (extensions, words, national form) goes to the library.
    // It leaves out only zeros, so it is `None` exactly when the input's digits
    // are all zeros, as below.
    if country.is_some()
        && let Some(rest) = trimmed.strip_prefix('+')
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || b" -.()/".contains(&b))
    {
        return without_leading_zeros(collect_sized(
            rest.split("(0)")
                .flat_map(str::chars)
                .filter(char::is_ascii_digit),
            rest.len(),
        ));
    }
    let digits = without_leading_zeros(collect_sized(
        trimmed.chars().filter(char::is_ascii_digit),
        trimmed.len(),
    ))?;
    if country.is_none() {
        return Some(digits);
    }
    let Some(region) = country
        .and_then(country_code)
        .and_then(|code| phonenumber::country::Id::from_str(&code.to_ascii_uppercase()).ok())
    else {
        return Some(digits);
    };
    // As written, else its digits alone (`6+9000` is no number, `69000` may be):
    // the output, read again, is then itself. Only a valid number gets a calling
    // code; digits that are none (`10`) stay as they are.
    let e164 = |text: &str| {
        phonenumber::parse(Some(region), text)
            .ok()
            .filter(phonenumber::is_valid)
            .map(|number| {
                number
                    .format()
                    .mode(phonenumber::Mode::E164)
                    .to_string()
                    .trim_start_matches('+')
                    .to_owned()
            })
    };
    Some(e164(trimmed).or_else(|| e164(&digits)).unwrap_or(digits))
}

/// `digits` without its leading zeros, in place; `None` if nothing else is left.
fn without_leading_zeros(mut digits: String) -> Option<String> {
    let zeros = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..zeros);
    (!digits.is_empty()).then_some(digits)
}

/// Lowercased with every whitespace character removed.
///
/// An id that is a whole RFC 3339 timestamp is first written the way JavaScript
/// stringifies a `Date` (param-builder receives date-typed ids that way, and the
/// profile's vectors pin it), so our hash equals the one Meta's Node SDK sends.
pub(super) fn external_id(trimmed: &str) -> Option<String> {
    let text: Cow<'_, str> = match DateTime::parse_from_rfc3339(trimmed) {
        Ok(at) => at
            .with_timezone(&Utc)
            .format("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")
            .to_string()
            .into(),
        Err(_) => trimmed.into(),
    };
    let kept = text.chars().filter(|c| !is_js_space(*c));
    if text.is_ascii() {
        return Some(collect_sized(
            kept.map(|c| c.to_ascii_lowercase()),
            text.len(),
        ));
    }
    Some(kept.collect::<String>().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_that_are_no_number_stay_as_written_so_a_second_pass_changes_nothing() {
        for (input, country) in [
            ("a@10.aa", "DE"),
            ("10", "DE"),
            ("+49 151 12345678", "DE"),
            ("(650)555-1212", "US"),
        ] {
            let once = phone(input, Some(country)).expect("digits");
            assert_eq!(
                phone(&once, Some(country)),
                Some(once.clone()),
                "{input} {country}"
            );
        }
        assert_eq!(phone("10", Some("DE")).as_deref(), Some("10"));
    }

    #[test]
    fn national_numbers_get_the_contacts_calling_code() {
        assert_eq!(
            phone("(650)555-1212", Some("US")).as_deref(),
            Some("16505551212")
        );
        assert_eq!(
            phone("020 7183 8750", Some("GB")).as_deref(),
            Some("442071838750")
        );
        assert_eq!(
            phone("020 7183 8750", Some("United Kingdom")).as_deref(),
            Some("442071838750")
        );
    }

    #[test]
    fn plain_international_numbers_agree_with_the_library() {
        for (input, country) in [
            ("+1 (512) 555-0001", "US"),
            ("+44 (0)20 7183 8750", "GB"),
            ("+39 06 1234 5678", "IT"),
            ("+49 30 1234567", "US"),
            ("+55 11 91234-5000", "BR"),
        ] {
            let region = phonenumber::country::Id::from_str(country).expect("region");
            let library = phonenumber::parse(Some(region), input).expect("parses");
            let e164 = library.format().mode(phonenumber::Mode::E164).to_string();
            assert_eq!(
                phone(input, Some(country)).as_deref(),
                Some(&e164[1..]),
                "{input}"
            );
        }
        assert_eq!(
            phone("+1 650 555 1212 ext. 12", Some("US")).as_deref(),
            Some("16505551212")
        );
    }

    #[test]
    fn international_numbers_keep_their_own_code_whatever_the_country() {
        assert_eq!(
            phone("+44 20 7183 8750", Some("US")).as_deref(),
            Some("442071838750")
        );
        assert_eq!(
            phone("+44 (0)20 7183 8750", Some("DE")).as_deref(),
            Some("442071838750")
        );
        assert_eq!(
            phone("0044 20 7183 8750", None).as_deref(),
            Some("442071838750")
        );
    }

    #[test]
    fn without_a_country_digits_are_kept_without_leading_zeros() {
        assert_eq!(phone("020 7183 8750", None).as_deref(), Some("2071838750"));
        assert_eq!(phone("000", None), None);
    }

    #[test]
    fn email_rejects_what_meta_would_not_match() {
        assert_eq!(
            email("John_Smith@Gmail.com").as_deref(),
            Some("john_smith@gmail.com")
        );
        for bad in [
            "tést@gmail.com",
            "a@exämple.com",
            "a@example.cöm",
            "a@b",
            "a..b@c.com",
            "a@-b.com",
            "@x.com",
            "a@b.c",
        ] {
            assert_eq!(email(bad), None, "{bad}");
        }
    }
}
