//! Deserializing stream chunks without allocating: [`Few`], a JSON array held inline
//! when it has one element (stream chunks carry one choice, one part, one tool call), and [`Str`], a JSON string borrowed from the input unless it has escapes
//! (serde's own `Cow<str>` always allocates when it is not a direct field, for example
//! inside an `Option`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// The elements of a JSON array, in order; the first is held inline (one only: these
/// structs are large, and every byte inline is copied as the value moves).
#[derive(Debug)]
pub(crate) struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Few<T> {
    fn default() -> Few<T> {
        Few { first: None, rest: Vec::new() }
    }
}

impl<T> Few<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Few<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Few<T>, D::Error> {
        struct FewVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for FewVisitor<T> {
            type Value = Few<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an array")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Few<T>, A::Error> {
                let mut few = Few { first: seq.next_element()?, rest: Vec::new() };
                if few.first.is_some() {
                    while let Some(element) = seq.next_element()? {
                        few.rest.push(element);
                    }
                }
                Ok(few)
            }
        }

        deserializer.deserialize_seq(FewVisitor(PhantomData))
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl Str<'_> {
    pub(crate) fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl<'a> From<Str<'a>> for Cow<'a, str> {
    fn from(text: Str<'a>) -> Cow<'a, str> {
        text.0
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Str<'a>, D::Error> {
        struct StrVisitor;

        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(text)))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(StrVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped() {
        let plain: Option<Str<'_>> = serde_json::from_str(r#""hello""#).unwrap();
        assert!(matches!(plain.unwrap().0, Cow::Borrowed("hello")));
        let escaped: Option<Str<'_>> = serde_json::from_str(r#""a\nb""#).unwrap();
        assert_eq!(escaped.unwrap().0, Cow::<str>::Owned("a\nb".to_owned()));
        assert!(serde_json::from_str::<Str<'_>>("1").is_err());
    }

    #[test]
    fn keeps_every_element_in_order() {
        for json in ["[]", "[1]", "[1,2]", "[1,2,3]", "[1,2,3,4,5]"] {
            let expected: Vec<u32> = serde_json::from_str(json).unwrap();
            let few: Few<u32> = serde_json::from_str(json).unwrap();
            assert_eq!(few.is_empty(), expected.is_empty());
            assert_eq!(few.into_iter().collect::<Vec<_>>(), expected);
        }
        assert!(serde_json::from_str::<Few<u32>>("{}").is_err());
        assert!(serde_json::from_str::<Few<u32>>(r#"[1,"x"]"#).is_err());
    }
}
