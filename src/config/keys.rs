//! The top-level keys a configuration file may hold. [`super::Config`] flattens
//! [`super::RegistryConfig`] into one table, and serde cannot refuse unknown
//! keys across a flatten, so the loader checks them against this list: the
//! server's own keys, written here, and the registry's, read from its
//! `Deserialize` implementation so they can never drift.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The keys [`super::Config`] reads itself (not through `registry`).
pub(super) const SERVER: &[&str] = &[
    "listen",
    "log_format",
    "trusted_proxies",
    "shutdown_timeout_secs",
    "idle_timeout_secs",
    "metrics_listen",
    "auth",
    "tls",
];

/// Every key allowed at the top of a configuration file.
pub(super) fn top_level() -> Vec<&'static str> {
    let mut keys = SERVER.to_vec();
    keys.extend(struct_fields::<super::RegistryConfig>());
    keys
}

/// The field names a derived `Deserialize` struct asks for.
fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only records the field list it is handed, then stops.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

/// The error [`FieldNames`] stops with.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_keys_are_read_from_its_fields() {
        let keys = top_level();
        for k in [
            "data_dir",
            "sparse_manifests",
            "retention",
            "delete",
            "listen",
            "tls",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(
            !keys.contains(&"registry"),
            "the flattened field is not a key"
        );
    }

    #[test]
    fn every_server_key_is_one_the_config_reads() {
        // A key the config reads refuses a value of the wrong type; a key it
        // ignores would not.
        for key in SERVER {
            let text = format!("{key} = 1.5\n");
            assert!(
                toml::from_str::<super::super::Config>(&text).is_err(),
                "{key} is in SERVER but the config does not read it"
            );
        }
    }
}
