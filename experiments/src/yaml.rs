//! The one place YAML is read and written.
//!
//! `serde_yaml` is deprecated upstream (archived in 2024). We use `serde_norway`, a maintained
//! fork with the same API and data model: errors carry line and column, `Value`/`Mapping` keep
//! key order (so sweeps expand in file order), and it serialises the resolved configs we save.
//! Swapping crates later touches only this module and `config`'s use of `Value`.

pub use serde_norway::{Error, Mapping, Value};

/// Parses YAML text into a generic value (errors carry line and column).
pub fn parse(text: &str) -> Result<Value, Error> {
    serde_norway::from_str(text)
}

/// Serialises a value back to YAML text.
pub fn to_string(value: &Value) -> Result<String, Error> {
    serde_norway::to_string(value)
}

/// Deserialises a typed value from a generic one.
pub fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_norway::from_value(value)
}
