//! Request bodies read the way the OpenAPI document describes them.
//!
//! serde's derived `Deserialize` for a struct also takes a JSON *array* of its fields in order
//! (`{"api": [null, null]}` filled a settings struct), while the document says `type: object`:
//! a client generated from it could never send that, and a fuzzer that sends it must be refused.
//! [`from_value`] walks the value like `serde_json::from_value` but answers an array where a
//! struct is due with an "invalid type" error, at every depth.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};
use serde_json::{Error, Map, Value};

/// `serde_json::from_value`, except that structs are read from JSON objects only.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(Strict(value))
}

struct Strict(Value);

impl<'de> Deserializer<'de> for Strict {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Items(items.into_iter())),
            Value::Object(fields) => visitor.visit_map(Fields::new(fields)),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(fields) => visitor.visit_map(Fields::new(fields)),
            Value::Array(_) => Err(de::Error::invalid_type(Unexpected::Seq, &"an object")),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Strict(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    // Enums keep serde_json's own reading (a string, or an object with one key); their content
    // is rare in our bodies and never a struct given as an array in practice.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    // Scalars: serde_json's Value already reads them exactly (numbers, strings, bytes).
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_str(visitor)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_string(visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_bytes(visitor)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_byte_buf(visitor)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_unit(visitor)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        seq tuple tuple_struct map identifier
    }
}

struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Fields {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Fields {
    fn new(fields: Map<String, Value>) -> Self {
        Fields {
            entries: fields.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(Strict(value)),
            None => Err(de::Error::custom("a value was asked for before its key")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: Option<i64>,
        b: Option<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Outer {
        inner: Option<Inner>,
        list: Vec<Inner>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Pin,
        Link,
    }

    #[test]
    fn objects_are_read_as_serde_json_reads_them() {
        let v = json!({"inner": {"a": 1, "b": "x"}, "list": [{"a": null}], "kind": "link"});
        let strict: Outer = super::from_value(v.clone()).unwrap();
        let plain: Outer = serde_json::from_value(v).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(strict.kind, Some(Kind::Link));
        assert_eq!(strict.list[0], Inner { a: None, b: None });
    }

    #[test]
    fn an_array_where_an_object_is_due_is_refused_at_any_depth() {
        // serde_json alone takes both.
        let top = json!([null, []]);
        assert!(serde_json::from_value::<Outer>(top.clone()).is_ok());
        assert!(super::from_value::<Outer>(top).is_err());
        let nested = json!({"inner": [null, null], "list": []});
        assert!(serde_json::from_value::<Outer>(nested.clone()).is_ok());
        let e = super::from_value::<Outer>(nested).unwrap_err().to_string();
        assert!(e.contains("an object"), "{e}");
        let in_list = json!({"inner": null, "list": [[1, "x"]]});
        assert!(super::from_value::<Outer>(in_list).is_err());
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_still_refused() {
        assert!(super::from_value::<Inner>(json!({"a": 1, "c": 2})).is_err());
        assert!(super::from_value::<Inner>(json!({"a": "1"})).is_err());
        assert!(
            super::from_value::<Outer>(json!({"inner": null, "list": [], "kind": "sms"})).is_err()
        );
    }
}
