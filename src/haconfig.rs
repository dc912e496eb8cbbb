//! Read-modify-write of OMS's `ha.config` value, a JSON object stored as a string in
//! `<rm>.oms_normal_config` (`cfg_name = 'ha.config'`).
//!
//! Only three fields are ever changed: `enable`, `perceiveStoreClientCheckpoint` and
//! `refetchStoreIntervalMin`. Everything else stays exactly as stored: unknown keys keep
//! their position and their value's bytes (nested objects, number spelling), because a
//! newer OMS may have added keys this tool does not know. Some versions omit
//! `perceiveStoreClientCheckpoint` and `refetchStoreIntervalMin`, so they are optional;
//! a missing field that must be set is appended at the end. A field stored as a string
//! (`"true"`, `"90"`) keeps being written as a string.
//!
//! The document is validated by serde_json first; then a small scanner splits the
//! top-level object into (key, raw value) pairs, which is safe because the input is
//! already known to be valid JSON.

use serde::Serialize;

/// The `enable` field: HA on or off.
pub const ENABLE: &str = "enable";
/// The `perceiveStoreClientCheckpoint` field.
pub const PERCEIVE_CHECKPOINT: &str = "perceiveStoreClientCheckpoint";
/// The `refetchStoreIntervalMin` field (minutes).
pub const REFETCH_INTERVAL_MIN: &str = "refetchStoreIntervalMin";

/// Why an `ha.config` value cannot be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaConfigError {
    /// The stored value is not JSON.
    #[error(
        "ha.config is not valid JSON ({reason}); fix it in the OMS console (System Parameters) before upgrading"
    )]
    InvalidJson {
        /// The parser's message.
        reason: String,
    },
    /// The stored value is JSON but not an object.
    #[error(
        "ha.config is a JSON {found}, not an object; fix it in the OMS console before upgrading"
    )]
    NotAnObject {
        /// What it is instead (array, string, number, ...).
        found: &'static str,
    },
    /// The same key appears twice, so it is unclear which one OMS uses.
    #[error("ha.config has the key `{key}` twice; remove one in the OMS console before upgrading")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// A known field has a value of the wrong type.
    #[error(
        "ha.config field `{field}` holds {found}, expected {expected}; fix it in the OMS console"
    )]
    FieldType {
        /// The field.
        field: &'static str,
        /// The raw value found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// A parsed `ha.config` that can be changed field by field and written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// (unescaped key, raw key text with quotes, raw value text), in stored order.
    entries: Vec<(String, String, String)>,
}

/// The fields a step wants set; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HaEdit {
    /// New `enable`.
    pub enable: Option<bool>,
    /// New `perceiveStoreClientCheckpoint`.
    pub perceive_checkpoint: Option<bool>,
    /// New `refetchStoreIntervalMin`.
    pub refetch_interval_min: Option<u64>,
}

/// The known fields as read (each optional, since versions differ).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HaFields {
    /// `enable`, when present.
    pub enable: Option<bool>,
    /// `perceiveStoreClientCheckpoint`, when present.
    pub perceive_checkpoint: Option<bool>,
    /// `refetchStoreIntervalMin`, when present.
    pub refetch_interval_min: Option<u64>,
}

impl HaConfig {
    /// Parses a stored `ha.config` value.
    pub fn parse(json: &str) -> Result<Self, HaConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| HaConfigError::InvalidJson {
                reason: e.to_string(),
            })?;
        let found = match &value {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Array(_) => Some("array"),
            serde_json::Value::String(_) => Some("string"),
            serde_json::Value::Number(_) => Some("number"),
            serde_json::Value::Bool(_) => Some("boolean"),
            serde_json::Value::Null => Some("null"),
        };
        if let Some(found) = found {
            return Err(HaConfigError::NotAnObject { found });
        }
        let entries = split_object(json);
        for (i, (k, _, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(other, _, _)| other == k) {
                return Err(HaConfigError::DuplicateKey { key: k.clone() });
            }
        }
        Ok(HaConfig { entries })
    }

    fn raw(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v.as_str())
    }

    /// The raw JSON text of any field, exactly as stored.
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        self.raw(key)
    }

    /// Keys in stored order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _, _)| k.as_str())
    }

    fn bool_field(&self, field: &'static str) -> Result<Option<bool>, HaConfigError> {
        let Some(raw) = self.raw(field) else {
            return Ok(None);
        };
        match raw {
            "true" | "\"true\"" => Ok(Some(true)),
            "false" | "\"false\"" => Ok(Some(false)),
            other => Err(HaConfigError::FieldType {
                field,
                found: other.to_string(),
                expected: "true or false",
            }),
        }
    }

    /// `enable`, if present.
    pub fn enable(&self) -> Result<Option<bool>, HaConfigError> {
        self.bool_field(ENABLE)
    }

    /// `perceiveStoreClientCheckpoint`, if present.
    pub fn perceive_checkpoint(&self) -> Result<Option<bool>, HaConfigError> {
        self.bool_field(PERCEIVE_CHECKPOINT)
    }

    /// `refetchStoreIntervalMin`, if present.
    pub fn refetch_interval_min(&self) -> Result<Option<u64>, HaConfigError> {
        let Some(raw) = self.raw(REFETCH_INTERVAL_MIN) else {
            return Ok(None);
        };
        let digits = raw.trim_matches('"');
        digits
            .parse::<u64>()
            .map(Some)
            .map_err(|_| HaConfigError::FieldType {
                field: REFETCH_INTERVAL_MIN,
                found: raw.to_string(),
                expected: "a whole number of minutes",
            })
    }

    /// The three known fields at once.
    pub fn fields(&self) -> Result<HaFields, HaConfigError> {
        Ok(HaFields {
            enable: self.enable()?,
            perceive_checkpoint: self.perceive_checkpoint()?,
            refetch_interval_min: self.refetch_interval_min()?,
        })
    }

    /// Sets a field, keeping its position and its string-or-not representation.
    fn set(&mut self, field: &'static str, plain: String) {
        match self.entries.iter_mut().find(|(k, _, _)| k == field) {
            Some((_, _, v)) => {
                *v = if v.starts_with('"') {
                    format!("\"{plain}\"")
                } else {
                    plain
                }
            }
            None => self
                .entries
                .push((field.to_string(), format!("\"{field}\""), plain)),
        }
    }

    /// Applies an edit. Fails (and changes nothing) when a field to change holds a value
    /// of the wrong type, since overwriting it would hide a misconfiguration.
    pub fn apply(&mut self, edit: &HaEdit) -> Result<(), HaConfigError> {
        if edit.enable.is_some() {
            self.enable()?;
        }
        if edit.perceive_checkpoint.is_some() {
            self.perceive_checkpoint()?;
        }
        if edit.refetch_interval_min.is_some() {
            self.refetch_interval_min()?;
        }
        if let Some(b) = edit.enable {
            self.set(ENABLE, b.to_string());
        }
        if let Some(b) = edit.perceive_checkpoint {
            self.set(PERCEIVE_CHECKPOINT, b.to_string());
        }
        if let Some(n) = edit.refetch_interval_min {
            self.set(REFETCH_INTERVAL_MIN, n.to_string());
        }
        Ok(())
    }

    /// True when every field the edit sets already has that value (a read-back check,
    /// and the condition polled for in manual HA mode).
    pub fn satisfies(&self, edit: &HaEdit) -> Result<bool, HaConfigError> {
        // Only the fields the edit sets are read, as in `apply`: a malformed field it leaves
        // alone must not fail a step that does not touch it.
        Ok(edit
            .enable
            .map_or(Ok(true), |b| Ok(self.enable()? == Some(b)))?
            && edit
                .perceive_checkpoint
                .map_or(Ok(true), |b| Ok(self.perceive_checkpoint()? == Some(b)))?
            && edit.refetch_interval_min.map_or(Ok(true), |n| {
                Ok::<_, HaConfigError>(self.refetch_interval_min()? == Some(n))
            })?)
    }

    /// What an operator's edit by hand (manual HA mode) must reach: like
    /// [`HaConfig::satisfies`], except that `refetchStoreIntervalMin` may be larger than
    /// asked (a longer refetch window covers the downtime too) unless the edit also sets
    /// `perceiveStoreClientCheckpoint=true`, where the default is asked for as it is.
    pub fn meets(&self, edit: &HaEdit) -> Result<bool, HaConfigError> {
        let exact = HaEdit {
            refetch_interval_min: None,
            ..*edit
        };
        if !self.satisfies(&exact)? {
            return Ok(false);
        }
        Ok(match edit.refetch_interval_min {
            None => true,
            Some(n) if edit.perceive_checkpoint == Some(true) => {
                self.refetch_interval_min()? == Some(n)
            }
            Some(n) => self.refetch_interval_min()?.is_some_and(|v| v >= n),
        })
    }

    /// The compact JSON text: stored keys in stored order with their raw values.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (_, k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

/// Parses `json`, applies `edit`, and returns the text to store.
pub fn edit(json: &str, edit: &HaEdit) -> Result<String, HaConfigError> {
    let mut c = HaConfig::parse(json)?;
    c.apply(edit)?;
    Ok(c.to_json())
}

/// True when the stored `json` already has every value `edit` sets.
pub fn satisfies(json: &str, edit: &HaEdit) -> Result<bool, HaConfigError> {
    HaConfig::parse(json)?.satisfies(edit)
}

/// True when the stored `json` meets what an operator was asked to set by hand
/// ([`HaConfig::meets`]).
pub fn meets(json: &str, edit: &HaEdit) -> Result<bool, HaConfigError> {
    HaConfig::parse(json)?.meets(edit)
}

/// Splits a top-level JSON object (already validated) into (key, raw key, raw value).
fn split_object(json: &str) -> Vec<(String, String, String)> {
    let b = json.as_bytes();
    let mut i = skip_ws(b, 0);
    debug_assert_eq!(b.get(i), Some(&b'{'));
    i += 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(b, i);
        if b.get(i) == Some(&b'}') || i >= b.len() {
            break;
        }
        let key_end = value_end(b, i);
        let raw_key = &json[i..key_end];
        // A valid JSON string always parses as one.
        let key: String = serde_json::from_str(raw_key).unwrap_or_default();
        i = skip_ws(b, key_end);
        i = skip_ws(b, i + 1); // ':'
        let end = value_end(b, i);
        out.push((key, raw_key.to_string(), json[i..end].to_string()));
        i = skip_ws(b, end);
        if b.get(i) == Some(&b',') {
            i += 1;
        }
    }
    out
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// One past the end of the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> usize {
    match b[i] {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            j
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            j
        }
    }
}

fn string_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = r#"{"enable":true,"enableHost":false,"enableStore":true,"perceiveStoreClientCheckpoint":false,"enableConnector":true,"enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"checkRequestIntervalSec":600,"checkJdbcWriterIntervalSec":600,"checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"clearAbnormalResourceHours":72,"refetchStoreIntervalMin":30}"#;

    #[test]
    fn disabling_changes_only_enable() {
        let out = edit(
            FULL,
            &HaEdit {
                enable: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(out, FULL.replacen("\"enable\":true", "\"enable\":false", 1));
    }

    #[test]
    fn enabling_with_interval_keeps_everything_else() {
        let e = HaEdit {
            enable: Some(true),
            refetch_interval_min: Some(90),
            ..Default::default()
        };
        let out = edit(&FULL.replace("\"enable\":true", "\"enable\":false"), &e).unwrap();
        assert_eq!(
            out,
            FULL.replace(
                "\"refetchStoreIntervalMin\":30",
                "\"refetchStoreIntervalMin\":90"
            )
        );
        assert!(satisfies(&out, &e).unwrap());
        assert!(!satisfies(FULL, &e).unwrap());
    }

    #[test]
    fn optional_fields_are_appended_when_missing() {
        let old = r#"{"enable":false,"enableStore":true}"#;
        let out = edit(
            old,
            &HaEdit {
                enable: Some(true),
                perceive_checkpoint: Some(true),
                refetch_interval_min: Some(45),
            },
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"enable":true,"enableStore":true,"perceiveStoreClientCheckpoint":true,"refetchStoreIntervalMin":45}"#
        );
        let f = HaConfig::parse(old).unwrap().fields().unwrap();
        assert_eq!(
            f,
            HaFields {
                enable: Some(false),
                perceive_checkpoint: None,
                refetch_interval_min: None
            }
        );
    }

    #[test]
    fn unknown_keys_and_values_stay_byte_for_byte() {
        let odd = "{ \"zeta\" : 1.50 ,\"nested\":{\"b\":[1, \"}\\\"]\"],\"a\":null},\n\"enable\":true, \"k\\u00e9y\":\"v\"}";
        let out = edit(
            odd,
            &HaEdit {
                enable: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            out,
            "{\"zeta\":1.50,\"nested\":{\"b\":[1, \"}\\\"]\"],\"a\":null},\"enable\":false,\"k\\u00e9y\":\"v\"}"
        );
        let c = HaConfig::parse(odd).unwrap();
        assert_eq!(
            c.keys().collect::<Vec<_>>(),
            ["zeta", "nested", "enable", "kéy"]
        );
    }

    #[test]
    fn string_typed_fields_stay_strings() {
        let s = r#"{"enable":"true","refetchStoreIntervalMin":"30"}"#;
        let c = HaConfig::parse(s).unwrap();
        assert_eq!(c.enable().unwrap(), Some(true));
        assert_eq!(c.refetch_interval_min().unwrap(), Some(30));
        let out = edit(
            s,
            &HaEdit {
                enable: Some(false),
                refetch_interval_min: Some(120),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(out, r#"{"enable":"false","refetchStoreIntervalMin":"120"}"#);
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(
            HaConfig::parse("enable=true"),
            Err(HaConfigError::InvalidJson { .. })
        ));
        assert_eq!(
            HaConfig::parse("[1,2]"),
            Err(HaConfigError::NotAnObject { found: "array" })
        );
        assert_eq!(
            HaConfig::parse("\"{}\""),
            Err(HaConfigError::NotAnObject { found: "string" })
        );
        assert_eq!(
            HaConfig::parse(r#"{"enable":true,"enable":false}"#),
            Err(HaConfigError::DuplicateKey {
                key: "enable".into()
            })
        );
        let bad = r#"{"enable":"yes","refetchStoreIntervalMin":-3}"#;
        let err = edit(
            bad,
            &HaEdit {
                enable: Some(false),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            HaConfigError::FieldType { field: ENABLE, .. }
        ));
        assert!(err.to_string().contains("\"yes\""));
        assert!(
            HaConfig::parse(bad)
                .unwrap()
                .refetch_interval_min()
                .is_err()
        );
        // Untouched bad fields do not block an edit of other fields.
        assert!(
            edit(
                r#"{"enable":true,"refetchStoreIntervalMin":"x"}"#,
                &HaEdit {
                    enable: Some(false),
                    ..Default::default()
                }
            )
            .is_ok()
        );
    }

    /// Found by fuzzing (`fuzz/corpus/haconfig/regress-satisfies-unrelated-field`): a
    /// malformed field the edit does not set made `satisfies` fail although `apply` succeeds.
    #[test]
    fn satisfies_reads_only_the_fields_the_edit_sets() {
        let json = r#"{"enable":true,"refetchStoreIntervalMin":"soon"}"#;
        let off = HaEdit {
            enable: Some(false),
            ..Default::default()
        };
        assert!(!satisfies(json, &off).unwrap());
        assert!(satisfies(&edit(json, &off).unwrap(), &off).unwrap());
    }

    #[test]
    fn empty_object_is_fine() {
        assert_eq!(
            edit(
                " { } ",
                &HaEdit {
                    enable: Some(false),
                    ..Default::default()
                }
            )
            .unwrap(),
            r#"{"enable":false}"#
        );
    }

    fn leaf() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ -~]{0,8}".prop_map(serde_json::Value::from),
            "\\PC{0,4}".prop_map(serde_json::Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z\"\\\\]{1,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any object, pretty or compact: after an edit, every other key has the same value
        /// and the edited fields read back as written.
        #[test]
        fn edit_keeps_other_keys(
            m in prop::collection::btree_map("[a-zA-Z\"\\\\ ]{1,6}", value(), 0..6),
            pretty in any::<bool>(),
            en in any::<bool>(),
            refetch in proptest::option::of(0u64..100_000),
        ) {
            let obj = serde_json::Value::Object(m.clone().into_iter().collect());
            let text = if pretty { serde_json::to_string_pretty(&obj).unwrap() } else { obj.to_string() };
            let e = HaEdit { enable: Some(en), refetch_interval_min: refetch, perceive_checkpoint: None };
            match edit(&text, &e) {
                Ok(out) => {
                    let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&out).unwrap();
                    for (k, v) in &m {
                        if k != ENABLE && !(k == REFETCH_INTERVAL_MIN && refetch.is_some()) {
                            prop_assert_eq!(back.get(k), Some(v));
                        }
                    }
                    prop_assert!(satisfies(&out, &e).unwrap());
                    prop_assert_eq!(back.len(), m.len() + usize::from(!m.contains_key(ENABLE))
                        + usize::from(refetch.is_some() && !m.contains_key(REFETCH_INTERVAL_MIN)));
                }
                Err(HaConfigError::FieldType { .. }) => {
                    prop_assert!(m.contains_key(ENABLE) || m.contains_key(REFETCH_INTERVAL_MIN));
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}
