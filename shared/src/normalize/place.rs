//! City, state, postcode and country.

use super::chars::{
    collect_sized, is_js_space, js_len, js_trim, looks_like_hashed, without_controls,
};

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

/// English names (letters only) to ISO codes: param-builder's `COUNTRY_MAPPINGS`
/// (`nodejs/capi-param-builder/src/piiUtil/stringUtil.js`, 272 names) in its order,
/// so a name that merely contains another resolves as Meta's code resolves it, with
/// its misspelt `sintmaartenductchpart` written right; then the names it lacks.
const COUNTRIES: &[(&str, &str)] = &[
    ("unitedstates", "us"),
    ("usa", "us"),
    ("ind", "in"),
    ("afghanistan", "af"),
    ("alandislands", "ax"),
    ("albania", "al"),
    ("algeria", "dz"),
    ("americansamoa", "as"),
    ("andorra", "ad"),
    ("angola", "ao"),
    ("anguilla", "ai"),
    ("antarctica", "aq"),
    ("antiguaandbarbuda", "ag"),
    ("argentina", "ar"),
    ("armenia", "am"),
    ("aruba", "aw"),
    ("australia", "au"),
    ("austria", "at"),
    ("azerbaijan", "az"),
    ("bahamas", "bs"),
    ("bahrain", "bh"),
    ("bangladesh", "bd"),
    ("barbados", "bb"),
    ("belarus", "by"),
    ("belgium", "be"),
    ("belize", "bz"),
    ("benin", "bj"),
    ("bermuda", "bm"),
    ("bhutan", "bt"),
    ("boliviaplurinationalstateof", "bo"),
    ("bolivia", "bo"),
    ("bonairesinteustatinsandsaba", "bq"),
    ("bosniaandherzegovina", "ba"),
    ("botswana", "bw"),
    ("bouvetisland", "bv"),
    ("brazil", "br"),
    ("britishindianoceanterritory", "io"),
    ("bruneidarussalam", "bn"),
    ("brunei", "bn"),
    ("bulgaria", "bg"),
    ("burkinafaso", "bf"),
    ("burundi", "bi"),
    ("cambodia", "kh"),
    ("cameroon", "cm"),
    ("canada", "ca"),
    ("capeverde", "cv"),
    ("caymanislands", "ky"),
    ("centralafricanrepublic", "cf"),
    ("chad", "td"),
    ("chile", "cl"),
    ("china", "cn"),
    ("christmasisland", "cx"),
    ("cocoskeelingislands", "cc"),
    ("colombia", "co"),
    ("comoros", "km"),
    ("congo", "cg"),
    ("congothedemocraticrepublicofthe", "cd"),
    ("democraticrepublicofthecongo", "cd"),
    ("cookislands", "ck"),
    ("costarica", "cr"),
    ("cotedivoire", "ci"),
    ("ivorycoast", "ci"),
    ("croatia", "hr"),
    ("cuba", "cu"),
    ("curacao", "cw"),
    ("cyprus", "cy"),
    ("czechrepublic", "cz"),
    ("denmark", "dk"),
    ("djibouti", "dj"),
    ("dominica", "dm"),
    ("dominicanrepublic", "do"),
    ("ecuador", "ec"),
    ("egypt", "eg"),
    ("elsalvador", "sv"),
    ("equatorialguinea", "gq"),
    ("eritrea", "er"),
    ("estonia", "ee"),
    ("ethiopia", "et"),
    ("falklandislandsmalvinas", "fk"),
    ("faroeislands", "fo"),
    ("fiji", "fj"),
    ("finland", "fi"),
    ("france", "fr"),
    ("frenchguiana", "gf"),
    ("frenchpolynesia", "pf"),
    ("frenchsouthernterritories", "tf"),
    ("gabon", "ga"),
    ("gambia", "gm"),
    ("georgia", "ge"),
    ("germany", "de"),
    ("ghana", "gh"),
    ("gibraltar", "gi"),
    ("greece", "gr"),
    ("greenland", "gl"),
    ("grenada", "gd"),
    ("guadeloupe", "gp"),
    ("guam", "gu"),
    ("guatemala", "gt"),
    ("guernsey", "gg"),
    ("guinea", "gn"),
    ("guineabissau", "gw"),
    ("guyana", "gy"),
    ("haiti", "ht"),
    ("heardislandandmcdonaldislands", "hm"),
    ("holyseevaticancitystate", "va"),
    ("vatican", "va"),
    ("honduras", "hn"),
    ("hongkong", "hk"),
    ("hungary", "hu"),
    ("iceland", "is"),
    ("india", "in"),
    ("indonesia", "id"),
    ("iranislamicrepublicof", "ir"),
    ("iran", "ir"),
    ("iraq", "iq"),
    ("ireland", "ie"),
    ("isleofman", "im"),
    ("israel", "il"),
    ("italy", "it"),
    ("jamaica", "jm"),
    ("japan", "jp"),
    ("jersey", "je"),
    ("jordan", "jo"),
    ("kazakhstan", "kz"),
    ("kenya", "ke"),
    ("kiribati", "ki"),
    ("koreademocraticpeoplesrepublicof", "kp"),
    ("northkorea", "kp"),
    ("korearepublicof", "kr"),
    ("southkorea", "kr"),
    ("kuwait", "kw"),
    ("kyrgyzstan", "kg"),
    ("laopeoplesdemocraticrepublic", "la"),
    ("laos", "la"),
    ("latvia", "lv"),
    ("lebanon", "lb"),
    ("lesotho", "ls"),
    ("liberia", "lr"),
    ("libya", "ly"),
    ("liechtenstein", "li"),
    ("lithuania", "lt"),
    ("luxembourg", "lu"),
    ("macao", "mo"),
    ("macedoniatheformeryugoslavrepublicof", "mk"),
    ("macedonia", "mk"),
    ("madagascar", "mg"),
    ("malawi", "mw"),
    ("malaysia", "my"),
    ("maldives", "mv"),
    ("mali", "ml"),
    ("malta", "mt"),
    ("marshallislands", "mh"),
    ("martinique", "mq"),
    ("mauritania", "mr"),
    ("mauritius", "mu"),
    ("mayotte", "yt"),
    ("mexico", "mx"),
    ("micronesiafederatedstatesof", "fm"),
    ("micronesia", "fm"),
    ("moldovarepublicof", "md"),
    ("moldova", "md"),
    ("monaco", "mc"),
    ("mongolia", "mn"),
    ("montenegro", "me"),
    ("montserrat", "ms"),
    ("morocco", "ma"),
    ("mozambique", "mz"),
    ("myanmar", "mm"),
    ("namibia", "na"),
    ("nauru", "nr"),
    ("nepal", "np"),
    ("netherlands", "nl"),
    ("newcaledonia", "nc"),
    ("newzealand", "nz"),
    ("nicaragua", "ni"),
    ("niger", "ne"),
    ("nigeria", "ng"),
    ("niue", "nu"),
    ("norfolkisland", "nf"),
    ("northernmarianaislands", "mp"),
    ("norway", "no"),
    ("oman", "om"),
    ("pakistan", "pk"),
    ("palau", "pw"),
    ("palestinestateof", "ps"),
    ("palestine", "ps"),
    ("panama", "pa"),
    ("papuanewguinea", "pg"),
    ("paraguay", "py"),
    ("peru", "pe"),
    ("philippines", "ph"),
    ("pitcairn", "pn"),
    ("poland", "pl"),
    ("portugal", "pt"),
    ("puertorico", "pr"),
    ("qatar", "qa"),
    ("reunion", "re"),
    ("romania", "ro"),
    ("russianfederation", "ru"),
    ("russia", "ru"),
    ("rwanda", "rw"),
    ("saintbarthelemy", "bl"),
    ("sainthelenaascensionandtristandacunha", "sh"),
    ("saintkittsandnevis", "kn"),
    ("saintlucia", "lc"),
    ("saintmartinfrenchpart", "mf"),
    ("saintpierreandmiquelon", "pm"),
    ("saintvincentandthegrenadines", "vc"),
    ("samoa", "ws"),
    ("sanmarino", "sm"),
    ("saotomeandprincipe", "st"),
    ("saudiarabia", "sa"),
    ("senegal", "sn"),
    ("serbia", "rs"),
    ("seychelles", "sc"),
    ("sierraleone", "sl"),
    ("singapore", "sg"),
    ("sintmaartendutchpart", "sx"),
    ("slovakia", "sk"),
    ("slovenia", "si"),
    ("solomonislands", "sb"),
    ("somalia", "so"),
    ("southafrica", "za"),
    ("southgeorgiaandthesouthsandwichislands", "gs"),
    ("southsudan", "ss"),
    ("spain", "es"),
    ("srilanka", "lk"),
    ("sudan", "sd"),
    ("suriname", "sr"),
    ("svalbardandjanmayen", "sj"),
    ("eswatini", "sz"),
    ("swaziland", "sz"),
    ("sweden", "se"),
    ("switzerland", "ch"),
    ("syrianarabrepublic", "sy"),
    ("syria", "sy"),
    ("taiwanprovinceofchina", "tw"),
    ("taiwan", "tw"),
    ("tajikistan", "tj"),
    ("tanzaniaunitedrepublicof", "tz"),
    ("tanzania", "tz"),
    ("thailand", "th"),
    ("timorleste", "tl"),
    ("easttimor", "tl"),
    ("togo", "tg"),
    ("tokelau", "tk"),
    ("tonga", "to"),
    ("trinidadandtobago", "tt"),
    ("tunisia", "tn"),
    ("turkey", "tr"),
    ("turkmenistan", "tm"),
    ("turksandcaicosislands", "tc"),
    ("tuvalu", "tv"),
    ("uganda", "ug"),
    ("ukraine", "ua"),
    ("unitedarabemirates", "ae"),
    ("unitedkingdom", "gb"),
    ("unitedstatesofamerica", "us"),
    ("unitedstatesminoroutlyingislands", "um"),
    ("uruguay", "uy"),
    ("uzbekistan", "uz"),
    ("vanuatu", "vu"),
    ("venezuelabolivarianrepublicof", "ve"),
    ("venezuela", "ve"),
    ("vietnam", "vn"),
    ("virginislandsbritish", "vg"),
    ("virginislandsus", "vi"),
    ("wallisandfutuna", "wf"),
    ("westernsahara", "eh"),
    ("yemen", "ye"),
    ("zambia", "zm"),
    ("zimbabwe", "zw"),
    // Not in param-builder's table, whose fallback (the first two letters) sends a
    // code no one has (`bu` for Burma) or another country's (`si` for Siam):
    // former names of countries that still exist (ISO 3166-3, and the alternative
    // names Meta's own tests expect: Holland, Burma, Persia, Siam, Ceylon) …
    ("holland", "nl"),
    ("burma", "mm"),
    ("persia", "ir"),
    ("siam", "th"),
    ("ceylon", "lk"),
    ("zaire", "cd"),
    ("kampuchea", "kh"),
    ("dahomey", "bj"),
    ("uppervolta", "bf"),
    ("northernrhodesia", "zm"),
    ("southernrhodesia", "zw"),
    ("rhodesia", "zw"),
    ("bechuanaland", "bw"),
    ("basutoland", "ls"),
    ("nyasaland", "mw"),
    ("tanganyika", "tz"),
    ("goldcoast", "gh"),
    ("britishhonduras", "bz"),
    ("portuguesetimor", "tl"),
    ("newhebrides", "vu"),
    ("elliceislands", "tv"),
    ("gilbertislands", "ki"),
    ("abyssinia", "et"),
    ("formosa", "tw"),
    ("frenchsomaliland", "dj"),
    ("spanishguinea", "gq"),
    // … and today's names the table lacks where the fallback gives another
    // country's code (Cabo Verde as `ca`, Great Britain as `gr`, Northern Ireland
    // as `ie` through the name it contains).
    ("caboverde", "cv"),
    ("czechia", "cz"),
    ("turkiye", "tr"),
    ("greatbritain", "gb"),
    ("england", "gb"),
    ("scotland", "gb"),
    ("wales", "gb"),
    ("northernireland", "gb"),
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
