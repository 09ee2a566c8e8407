//! Deserialising GHL objects fast while keeping every field.
//!
//! serde's `flatten` (the usual way to keep unknown keys) buffers the whole object
//! before typing any field, which doubled the cost of parsing a contact. The
//! visitor below types known keys directly and keeps the rest, in one pass.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

/// An object key, borrowed from the input when it can be.
pub(crate) struct Key<'de>(Cow<'de, str>);

impl Key<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A value where GHL's `null` means the type's default (an empty list, `None`).
pub(crate) struct OrDefault<T>(pub(crate) T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for OrDefault<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(OrDefault(
            Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
        ))
    }
}

/// Implements `Deserialize` for a `Default` struct with an `extra` map: listed keys
/// go to their fields (GHL's `null` as the default), `required` ones must be
/// present, every other key is kept in `extra`.
macro_rules! deserialize_keeping_extra {
    ($ty:ident, required { $($rkey:literal => $rfield:ident),* }, { $($key:literal => $field:ident),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a GHL ", stringify!($ty), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        use $crate::ghl::de::{Key, OrDefault};
                        let mut out = $ty::default();
                        $( let mut $rfield = None; )*
                        while let Some(key) = map.next_key::<Key<'de>>()? {
                            match key.as_str() {
                                $( $rkey => $rfield = Some(map.next_value()?), )*
                                $( $key => out.$field = map.next_value::<OrDefault<_>>()?.0, )*
                                _ => {
                                    let value = map.next_value()?;
                                    out.extra.insert(key.into_string(), value);
                                }
                            }
                        }
                        $( out.$rfield = $rfield.ok_or_else(|| serde::de::Error::missing_field($rkey))?; )*
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(Visitor)
            }
        }
    };
}

pub(crate) use deserialize_keeping_extra;
