//! Deserialising GHL objects fast while keeping every field.
//!
//! serde's `flatten` (the usual way to keep unknown keys) buffers the whole object
//! before typing any field, which doubled the cost of parsing a contact. The
//! visitor below types known keys directly and keeps the rest, in one pass.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Visitor};
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

/// An optional field deserialised into the value already there, keeping its
/// allocations: a text reuses its string's capacity, a list its elements.
pub(crate) trait Refill<'de> {
    /// What GHL's `null` leaves: the type's default.
    fn reset(&mut self);
    /// Fills from a value that is not `null`.
    fn fill<D: Deserializer<'de>>(&mut self, deserializer: D) -> Result<(), D::Error>;
}

impl<'de, T: Deserialize<'de>> Refill<'de> for Option<T> {
    fn reset(&mut self) {
        *self = None;
    }

    fn fill<D: Deserializer<'de>>(&mut self, deserializer: D) -> Result<(), D::Error> {
        match self {
            Some(value) => T::deserialize_in_place(deserializer, value),
            None => {
                *self = Some(T::deserialize(deserializer)?);
                Ok(())
            }
        }
    }
}

impl<'de, T: Deserialize<'de>> Refill<'de> for Vec<T> {
    fn reset(&mut self) {
        self.clear();
    }

    fn fill<D: Deserializer<'de>>(&mut self, deserializer: D) -> Result<(), D::Error> {
        Vec::deserialize_in_place(deserializer, self)
    }
}

/// Seeds for `MapAccess::next_value_seed`: [`Refill`] for an optional field.
pub(crate) struct RefillSeed<'a, T>(pub(crate) &'a mut T);

impl<'de, T: Refill<'de>> DeserializeSeed<'de> for RefillSeed<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, T: Refill<'de>> Visitor<'de> for RefillSeed<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.0.reset();
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0.fill(deserializer)
    }
}

/// A required field, deserialised into the value already there.
pub(crate) struct InPlaceSeed<'a, T>(pub(crate) &'a mut T);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for InPlaceSeed<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        T::deserialize_in_place(deserializer, self.0)
    }
}

/// Implements `Deserialize` for a `Default` struct with an `extra` map: listed keys
/// go to their fields (GHL's `null` as the default), `required` ones must be
/// present, every other key is kept in `extra`.
///
/// Parsing happens in place (`deserialize` fills a default value): a caller that
/// parses record after record into the same value (`ghl-capi map`) reuses its
/// strings instead of allocating each one afresh. Fields a record lacks are reset,
/// so the result always equals a fresh parse.
macro_rules! deserialize_keeping_extra {
    ($ty:ident, required { $($rkey:literal => $rfield:ident),* }, { $($key:literal => $field:ident),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let mut out = $ty::default();
                Self::deserialize_in_place(deserializer, &mut out)?;
                Ok(out)
            }

            fn deserialize_in_place<D: serde::Deserializer<'de>>(
                deserializer: D,
                place: &mut Self,
            ) -> Result<(), D::Error> {
                struct Visitor<'a>(&'a mut $ty);
                impl<'de> serde::de::Visitor<'de> for Visitor<'_> {
                    type Value = ();
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a GHL ", stringify!($ty), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                        use $crate::ghl::de::{Key, RefillSeed};
                        #[derive(Default)]
                        struct Seen {
                            $( $rfield: bool, )*
                            $( $field: bool, )*
                        }
                        let out = self.0;
                        let mut seen = Seen::default();
                        out.extra.clear();
                        while let Some(key) = map.next_key::<Key<'de>>()? {
                            match key.as_str() {
                                $( $rkey => {
                                    map.next_value_seed($crate::ghl::de::InPlaceSeed(&mut out.$rfield))?;
                                    seen.$rfield = true;
                                } )*
                                $( $key => {
                                    map.next_value_seed(RefillSeed(&mut out.$field))?;
                                    seen.$field = true;
                                } )*
                                _ => {
                                    let value = map.next_value()?;
                                    out.extra.insert(key.into_string(), value);
                                }
                            }
                        }
                        $( if !seen.$rfield {
                            return Err(serde::de::Error::missing_field($rkey));
                        } )*
                        $( if !seen.$field {
                            out.$field = Default::default();
                        } )*
                        Ok(())
                    }
                }
                deserializer.deserialize_map(Visitor(place))
            }
        }
    };
}

pub(crate) use deserialize_keeping_extra;
