//! `user_data`: hashed customer information (as lists) and the unhashed ids.

use serde::{Deserialize, Serialize};

use crate::normalize::{Field, HexDigest, digest};

/// Customer information. Hashed keys hold SHA-256 hex digests; the others are sent
/// as they are (click ids are case-sensitive and must never be hashed or folded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserData {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub em: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ph: Vec<HexDigest>,
    #[serde(default, rename = "fn", skip_serializing_if = "Vec::is_empty")]
    pub first_name: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ln: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ge: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ct: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub st: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zp: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub country: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_id: Vec<HexDigest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fb_login_id: Option<u64>,
    /// Lead Ads `leadgen_id` (15–17 digits), sent as an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anon_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub madid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_scoped_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ig_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ig_sid: Option<String>,
}

impl UserData {
    /// The list that holds `field`'s hashes.
    pub fn hashes(&self, field: Field) -> &[HexDigest] {
        match field {
            Field::Email => &self.em,
            Field::Phone => &self.ph,
            Field::FirstName => &self.first_name,
            Field::LastName => &self.ln,
            Field::DateOfBirth => &self.db,
            Field::Gender => &self.ge,
            Field::City => &self.ct,
            Field::State => &self.st,
            Field::Zip => &self.zp,
            Field::Country => &self.country,
            Field::ExternalId => &self.external_id,
        }
    }

    /// The `user_data` keys it carries (`em`, `ph`, `fbc`, …): which identifiers an
    /// event matches by, for its audit line, never their values.
    pub fn carried(&self) -> Vec<&'static str> {
        let ids = [
            ("client_ip_address", self.client_ip_address.is_some()),
            ("client_user_agent", self.client_user_agent.is_some()),
            ("fbc", self.fbc.is_some()),
            ("fbp", self.fbp.is_some()),
            ("lead_id", self.lead_id.is_some()),
        ];
        Field::ALL
            .into_iter()
            .filter(|f| !self.hashes(*f).is_empty())
            .map(Field::key)
            .chain(ids.into_iter().filter(|(_, has)| *has).map(|(key, _)| key))
            .collect()
    }

    fn hashes_mut(&mut self, field: Field) -> &mut Vec<HexDigest> {
        match field {
            Field::Email => &mut self.em,
            Field::Phone => &mut self.ph,
            Field::FirstName => &mut self.first_name,
            Field::LastName => &mut self.ln,
            Field::DateOfBirth => &mut self.db,
            Field::Gender => &mut self.ge,
            Field::City => &mut self.ct,
            Field::State => &mut self.st,
            Field::Zip => &mut self.zp,
            Field::Country => &mut self.country,
            Field::ExternalId => &mut self.external_id,
        }
    }

    /// Empties it in place, keeping the hash lists' allocations for the next event
    /// (moving them into a new empty value cost about 400 more instructions an event).
    pub fn clear(&mut self) {
        // Every field is named, so one added later cannot be left out.
        let UserData {
            em,
            ph,
            first_name,
            ln,
            db,
            ge,
            ct,
            st,
            zp,
            country,
            external_id,
            client_ip_address,
            client_user_agent,
            fbc,
            fbp,
            subscription_id,
            fb_login_id,
            lead_id,
            anon_id,
            madid,
            page_id,
            page_scoped_user_id,
            ctwa_clid,
            ig_account_id,
            ig_sid,
        } = self;
        em.clear();
        ph.clear();
        first_name.clear();
        ln.clear();
        db.clear();
        ge.clear();
        ct.clear();
        st.clear();
        zp.clear();
        country.clear();
        external_id.clear();
        *client_ip_address = None;
        *client_user_agent = None;
        *fbc = None;
        *fbp = None;
        *subscription_id = None;
        *fb_login_id = None;
        *lead_id = None;
        *anon_id = None;
        *madid = None;
        *page_id = None;
        *page_scoped_user_id = None;
        *ctwa_clid = None;
        *ig_account_id = None;
        *ig_sid = None;
    }

    /// Normalises and hashes `raw` into `field`'s list; a value that normalises to
    /// nothing is dropped and a repeated one is kept once. Returns whether it was kept.
    pub fn add(&mut self, field: Field, raw: &str, country: Option<&str>) -> bool {
        let Some(hash) = digest(field, raw, country) else {
            return false;
        };
        let list = self.hashes_mut(field);
        if !list.contains(&hash) {
            list.push(hash);
        }
        true
    }

    /// The keys that carry a value, as Meta names them (for the matching rules).
    pub fn present_keys(&self) -> impl Iterator<Item = &'static str> + Clone + '_ {
        let hashed = Field::ALL
            .into_iter()
            .filter(|f| !self.hashes(*f).is_empty())
            .map(Field::key);
        let unhashed = [
            ("client_ip_address", self.client_ip_address.is_some()),
            ("client_user_agent", self.client_user_agent.is_some()),
            ("fbc", self.fbc.is_some()),
            ("fbp", self.fbp.is_some()),
            ("subscription_id", self.subscription_id.is_some()),
            ("fb_login_id", self.fb_login_id.is_some()),
            ("lead_id", self.lead_id.is_some()),
            ("anon_id", self.anon_id.is_some()),
            ("madid", self.madid.is_some()),
            ("page_scoped_user_id", self.page_scoped_user_id.is_some()),
            ("ctwa_clid", self.ctwa_clid.is_some()),
            ("ig_sid", self.ig_sid.is_some()),
        ];
        hashed.chain(unhashed.into_iter().filter(|(_, set)| *set).map(|(k, _)| k))
    }
}

/// `fbc` from a click id: `fb.1.{creation_ms}.{fbclid}`, the click id untouched
/// (it is case-sensitive).
pub fn fbc_from_click(fbclid: &str, creation_ms: i64) -> Option<String> {
    let fbclid = fbclid.trim();
    (!fbclid.is_empty()).then(|| {
        let mut ms = itoa::Buffer::new();
        ["fb.1.", ms.format(creation_ms), ".", fbclid].concat()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_names_the_keys_it_carries_and_no_value() {
        let mut data = UserData::default();
        assert!(data.add(Field::Email, "jane@example.com", None));
        data.fbc = Some("fb.1.1.IwAR".into());
        assert_eq!(data.carried(), ["em", "fbc"]);
        assert!(UserData::default().carried().is_empty());
    }

    #[test]
    fn values_are_hashed_once_and_empties_dropped() {
        let mut ud = UserData::default();
        assert!(ud.add(Field::Email, " John_Smith@gmail.com ", None));
        assert!(ud.add(Field::Email, "john_smith@GMAIL.com", None));
        assert!(!ud.add(Field::FirstName, "  ", None));
        assert_eq!(
            ud.em,
            ["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"]
        );
        assert!(ud.first_name.is_empty());
        assert_eq!(ud.present_keys().collect::<Vec<_>>(), ["em"]);
    }

    #[test]
    fn clearing_empties_every_field_and_keeps_the_lists() {
        let mut ud = UserData::default();
        ud.add(Field::Email, "a@b.co", None);
        ud.add(Field::ExternalId, "c1", None);
        ud.fbc = Some("fb.1.1.x".into());
        ud.lead_id = Some(1);
        let kept = ud.em.capacity();
        ud.clear();
        assert_eq!(ud, UserData::default());
        assert_eq!(ud.em.capacity(), kept);
    }

    #[test]
    fn fbc_keeps_the_click_id_case() {
        assert_eq!(
            fbc_from_click("IwAR2xYz", 1_732_000_000_000).as_deref(),
            Some("fb.1.1732000000000.IwAR2xYz")
        );
        assert_eq!(fbc_from_click(" ", 1), None);
    }
}
