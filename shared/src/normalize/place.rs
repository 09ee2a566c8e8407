//! City, state, postcode and country.

use super::chars::{
    collect_sized, is_js_space, js_len, js_trim, looks_like_hashed, without_controls,
};
use super::countries::COUNTRIES;

/// ASCII letters and digits only, lowercased; must start with a letter
/// (param-builder's rule, so `Montréal` → `montral` as Meta's own SDK sends it).
pub(super) fn city(trimmed: &str) -> Option<String> {
    let kept = collect_sized(
        trimmed
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase()),
        trimmed.len(),
    );
    kept.starts_with(|c: char| c.is_ascii_lowercase())
        .then_some(kept)
}

/// Two-letter code: US states and Canadian provinces by name, otherwise the first
/// two letters (param-builder's behaviour, kept so hashes match Meta's SDK).
pub(super) fn state(trimmed: &str) -> Option<String> {
    two_letter(trimmed, STATES)
}

/// ISO 3166-1 alpha-2, lowercase, from a code or an English country name.
pub(super) fn country(trimmed: &str) -> Option<String> {
    two_letter(trimmed, COUNTRIES)
}

/// The contact's country as a lowercase ISO code, for context such as phone regions.
pub fn country_code(input: &str) -> Option<String> {
    let cleaned = without_controls(input);
    let trimmed = js_trim(&cleaned);
    if looks_like_hashed(trimmed) {
        return None;
    }
    country(trimmed)
}

fn two_letter(input: &str, names: &[(&str, &str)]) -> Option<String> {
    // Only ASCII letters survive, so lowercasing char by char is exact here.
    let letters = collect_sized(
        input
            .chars()
            .flat_map(char::to_lowercase)
            .filter(char::is_ascii_lowercase),
        input.len(),
    );
    if letters.len() <= 2 {
        return (!letters.is_empty()).then_some(letters);
    }
    // An exact name first, then the first name it contains, else its first two letters.
    let code = names
        .iter()
        .find(|(name, _)| *name == letters)
        .or_else(|| names.iter().find(|(name, _)| letters.contains(name)))
        .map_or(&letters[..2], |(_, code)| code);
    Some(code.to_owned())
}

/// Lowercase, the part before the first `-`, with no whitespace at all (the docs'
/// rule: `SW1A 1AA` → `sw1a1aa`; here we deliberately differ from param-builder,
/// which keeps inner spaces); at least two characters.
pub(super) fn zip(trimmed: &str) -> Option<String> {
    let head = trimmed.split('-').next().unwrap_or_default();
    let kept = head.chars().filter(|c| !is_js_space(*c));
    let zip: String = if head.is_ascii() {
        collect_sized(kept.map(|c| c.to_ascii_lowercase()), head.len())
    } else {
        kept.collect::<String>().to_lowercase()
    };
    (js_len(&zip) >= 2).then_some(zip)
}

/// Canadian provinces, then US states: the order decides which name wins when an
/// input merely contains one, exactly as in param-builder.
const STATES: &[(&str, &str)] = &[
    ("ontario", "on"),
    ("quebec", "qc"),
    ("britishcolumbia", "bc"),
    ("alberta", "ab"),
    ("saskatchewan", "sk"),
    ("manitoba", "mb"),
    ("novascotia", "ns"),
    ("newbrunswick", "nb"),
    ("princeedwardisland", "pe"),
    ("newfoundlandandlabrador", "nl"),
    ("yukon", "yt"),
    ("northwestterritories", "nt"),
    ("nunavut", "nu"),
    ("alabama", "al"),
    ("alaska", "ak"),
    ("arizona", "az"),
    ("arkansas", "ar"),
    ("california", "ca"),
    ("colorado", "co"),
    ("connecticut", "ct"),
    ("delaware", "de"),
    ("florida", "fl"),
    ("georgia", "ga"),
    ("hawaii", "hi"),
    ("idaho", "id"),
    ("illinois", "il"),
    ("indiana", "in"),
    ("iowa", "ia"),
    ("kansas", "ks"),
    ("kentucky", "ky"),
    ("louisiana", "la"),
    ("maine", "me"),
    ("maryland", "md"),
    ("massachusetts", "ma"),
    ("michigan", "mi"),
    ("minnesota", "mn"),
    ("mississippi", "ms"),
    ("missouri", "mo"),
    ("montana", "mt"),
    ("nebraska", "ne"),
    ("nevada", "nv"),
    ("newhampshire", "nh"),
    ("newjersey", "nj"),
    ("newmexico", "nm"),
    ("newyork", "ny"),
    ("northcarolina", "nc"),
    ("northdakota", "nd"),
    ("ohio", "oh"),
    ("oklahoma", "ok"),
    ("oregon", "or"),
    ("pennsylvania", "pa"),
    ("rhodeisland", "ri"),
    ("southcarolina", "sc"),
    ("southdakota", "sd"),
    ("tennessee", "tn"),
    ("texas", "tx"),
    ("utah", "ut"),
    ("vermont", "vt"),
    ("virginia", "va"),
    ("washington", "wa"),
    ("westvirginia", "wv"),
    ("wisconsin", "wi"),
    ("wyoming", "wy"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_become_iso_codes() {
        assert_eq!(country("United Kingdom").as_deref(), Some("gb"));
        assert_eq!(country("DE").as_deref(), Some("de"));
        assert_eq!(state("New York").as_deref(), Some("ny"));
        assert_eq!(state("British Columbia").as_deref(), Some("bc"));
    }

    #[test]
    fn former_and_current_names_give_todays_code() {
        for (name, code) in [
            ("Burma", "mm"),
            ("Siam", "th"),
            ("Zaire", "cd"),
            ("Upper Volta", "bf"),
            ("Northern Rhodesia", "zm"),
            ("Rhodesia", "zw"),
            ("Cabo Verde", "cv"),
            ("Northern Ireland", "gb"),
            ("Myanmar (Burma)", "mm"),
        ] {
            assert_eq!(country(name).as_deref(), Some(code), "{name}");
        }
        // A name still unknown falls back to its first two letters, as Meta's does.
        assert_eq!(country("Atlantis").as_deref(), Some("at"));
    }

    #[test]
    fn stray_control_characters_are_gone_before_a_country_is_read() {
        assert_eq!(country_code("Can\u{0}ada").as_deref(), Some("ca"));
        assert_eq!(country_code("\u{7f}").as_deref(), None);
    }

    #[test]
    fn postcodes_lose_all_whitespace_and_any_extension() {
        assert_eq!(zip("SW1A 1AA").as_deref(), Some("sw1a1aa"));
        assert_eq!(zip("94105-1234").as_deref(), Some("94105"));
        assert_eq!(zip("1"), None);
    }
}
