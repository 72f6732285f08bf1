//! Query records as they are decoded: JSON objects without Salesforce's `attributes` (every
//! record and every nested parent carries `{"type", "url"}`, which no table reads). Skipping them
//! while parsing spares a map, two keys and two strings per object, a good share of a page's
//! allocations.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// `records`: an array of objects, each without `attributes` at any depth.
pub(crate) fn records<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Map<String, Value>>, D::Error> {
    struct Records;
    impl<'de> Visitor<'de> for Records {
        type Value = Vec<Map<String, Value>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(Lean(value)) = seq.next_element()? {
                match value {
                    Value::Object(record) => records.push(record),
                    _ => return Err(serde::de::Error::custom("a record that is not an object")),
                }
            }
            Ok(records)
        }
    }
    deserializer.deserialize_seq(Records)
}

/// A JSON value whose objects leave out `attributes`.
struct Lean(Value);

impl<'de> Deserialize<'de> for Lean {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lean, D::Error> {
        deserializer.deserialize_any(LeanVisitor).map(Lean)
    }
}

struct LeanVisitor;

impl<'de> Visitor<'de> for LeanVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Lean(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "attributes" {
                map.next_value::<IgnoredAny>()?;
            } else {
                let Lean(value) = map.next_value()?;
                object.insert(key, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(deserialize_with = "super::records")]
        records: Vec<serde_json::Map<String, serde_json::Value>>,
    }

    #[test]
    fn records_lose_their_attributes_at_every_depth_and_keep_the_rest() {
        let json = r#"{"records":[{"attributes":{"type":"User","url":"/services/data/v66.0/sobjects/User/005"},
            "Id":"005","IsActive":true,"Count":5.0,"Big":12345678901,"Name":"Zoë \"Z\"","Title":null,
            "Profile":{"attributes":{"type":"Profile"},"Name":"Admin","UserLicense":{"attributes":{"type":"UserLicense"},"Name":"Salesforce"}},
            "Manager":null,"Tags":["a",1]}]}"#;
        let page: Page = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        let expected = serde_json::json!({
            "Id": "005", "IsActive": true, "Count": 5.0, "Big": 12345678901_i64, "Name": "Zoë \"Z\"", "Title": null,
            "Profile": {"Name": "Admin", "UserLicense": {"Name": "Salesforce"}}, "Manager": null, "Tags": ["a", 1]
        });
        assert_eq!(serde_json::Value::Object(page.records[0].clone()), expected);
    }
}
