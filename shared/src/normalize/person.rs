//! Names, date of birth and gender.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Datelike;

use super::chars::{collect_sized, is_ascii_punctuation, is_js_space};

/// Lowercase, without whitespace or ASCII punctuation; letters of any script stay
/// (Meta accepts UTF-8 names: `Valéry` → `valéry`).
pub(super) fn name(trimmed: &str) -> Option<String> {
    let keep = |c: &char| !is_js_space(*c) && !is_ascii_punctuation(*c);
    if trimmed.is_ascii() {
        return Some(collect_sized(
            trimmed.chars().filter(keep).map(|c| c.to_ascii_lowercase()),
            trimmed.len(),
        ));
    }
    // Whole-string lowercasing, as JavaScript does it (a final Σ becomes ς).
    Some(
        trimmed
            .chars()
            .filter(keep)
            .collect::<String>()
            .to_lowercase(),
    )
}

/// `YYYYMMDD`. The first three groups of ASCII digits are read as a date in any
/// order: a group above 31 is the year, a group above 12 the day, otherwise
/// month-first (US order). A lone 8-digit group is taken as already `YYYYMMDD`.
pub(super) fn date_of_birth(trimmed: &str) -> Option<String> {
    let mut groups = trimmed
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty());
    let n = |g: &str| g.parse::<u64>().unwrap_or(u64::MAX);
    match (groups.next(), groups.next(), groups.next()) {
        (Some(a), Some(b), Some(c)) => ymd(n(a), n(b), n(c)),
        (Some(only), None, None) if only.len() == 8 => Some(only.to_owned()),
        _ => None,
    }
}

fn ymd(n1: u64, n2: u64, n3: u64) -> Option<String> {
    let month_day = |x: u64, y: u64| if x > 12 { (y, x) } else { (x, y) };
    let (year, (month, day)) = if n1 > 31 {
        (n1, month_day(n2, n3))
    } else if n2 > 31 {
        (n2, month_day(n3, n1))
    } else {
        (n3, month_day(n1, n2))
    };
    // Meta's years run from 1800 to next year; the day is checked against 31 only,
    // as param-builder does, so both ends hash the same string.
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day) && meta_year(year);
    // By hand: `format!` took a twentieth of `map`'s time with the clock read below.
    valid.then(|| {
        [
            year / 1000,
            year / 100,
            year / 10,
            year,
            month / 10,
            month,
            day / 10,
            day,
        ]
        .into_iter()
        .map(|n| char::from(b'0' + (n % 10) as u8))
        .collect()
    })
}

/// Whether Meta takes `year` in a birth date: 1800 to next year (so at most four
/// digits). Years do not go back, so one at most a year past the latest year read
/// from the clock needs no new reading; only a later one does.
fn meta_year(year: u64) -> bool {
    static YEAR_SEEN: AtomicU64 = AtomicU64::new(0);
    if year < 1800 {
        return false;
    }
    if year <= YEAR_SEEN.load(Ordering::Relaxed) + 1 {
        return true;
    }
    let now = u64::try_from(chrono::Utc::now().year()).unwrap_or(0);
    YEAR_SEEN.fetch_max(now, Ordering::Relaxed);
    year <= now + 1
}

const MALE: &[&str] = &[
    "man",
    "male",
    "boy",
    "gentleman",
    "guy",
    "sir",
    "mister",
    "mr",
    "son",
    "father",
    "dad",
    "daddy",
    "papa",
    "uncle",
    "nephew",
    "brother",
    "husband",
    "boyfriend",
    "groom",
    "widower",
    "king",
    "prince",
    "duke",
    "count",
    "emperor",
    "god",
    "lord",
    "lad",
    "fellow",
    "chap",
    "bloke",
    "dude",
    "he",
    "him",
    "his",
    "himself",
    "m",
];

const FEMALE: &[&str] = &[
    "woman",
    "female",
    "girl",
    "lady",
    "miss",
    "ms",
    "mrs",
    "madam",
    "ma'am",
    "daughter",
    "mother",
    "mom",
    "mama",
    "mommy",
    "aunt",
    "niece",
    "sister",
    "wife",
    "girlfriend",
    "bride",
    "widow",
    "queen",
    "princess",
    "duchess",
    "countess",
    "empress",
    "goddess",
    "maiden",
    "lass",
    "gal",
    "chick",
    "dame",
    "belle",
    "she",
    "her",
    "hers",
    "herself",
    "f",
];

/// `m` or `f` from a word that names a gender; anything else is dropped.
pub(super) fn gender(trimmed: &str) -> Option<String> {
    let word = trimmed.to_lowercase();
    if MALE.contains(&word.as_str()) {
        Some("m".to_owned())
    } else if FEMALE.contains(&word.as_str()) {
        Some("f".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghl_dates_of_birth_become_yyyymmdd() {
        assert_eq!(
            date_of_birth("2000-01-05T00:00:00.000Z").as_deref(),
            Some("20000105")
        );
        assert_eq!(date_of_birth("16/2/1997").as_deref(), Some("19970216"));
        assert_eq!(date_of_birth("12/31/90"), None);
    }

    #[test]
    fn birth_years_run_from_1800_to_next_year_whether_or_not_the_clock_was_read() {
        let next = u64::try_from(chrono::Utc::now().year()).expect("AD") + 1;
        for _ in 0..2 {
            assert!(!meta_year(1799));
            assert!(meta_year(1800));
            assert!(meta_year(next));
            assert!(!meta_year(next + 1));
            assert!(!meta_year(u64::MAX));
        }
        assert_eq!(date_of_birth("7/4/1800").as_deref(), Some("18000704"));
        assert_eq!(
            date_of_birth(&format!("{next}-12-31")),
            Some(format!("{next}1231"))
        );
    }

    #[test]
    fn gender_synonyms() {
        assert_eq!(gender("Woman").as_deref(), Some("f"));
        assert_eq!(gender("MR").as_deref(), Some("m"));
        assert_eq!(gender("other"), None);
    }
}
