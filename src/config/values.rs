//! Setting values that carry their own invariants: times that are never 0, values that
//! are never empty, and one rate-limit quota per route class.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::quota::Class;

/// A time that must not be 0, written in whole milliseconds (`*_ms = 250`) as the
/// config files always have; a 0 is refused when the settings load, naming its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Millis(NonZeroU64);

impl Millis {
    /// For settings built in code (tests, tools). Panics on 0.
    pub const fn new(ms: u64) -> Self {
        match NonZeroU64::new(ms) {
            Some(ms) => Millis(ms),
            None => panic!("a Millis setting must be greater than 0"),
        }
    }

    pub fn get(self) -> Duration {
        Duration::from_millis(self.0.get())
    }
}

impl TryFrom<u64> for Millis {
    type Error = &'static str;

    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        NonZeroU64::new(ms)
            .map(Millis)
            .ok_or("must be greater than 0")
    }
}

/// A setting that must not be empty: an address, a topic or a model name that the
/// chosen backend cannot work without. Built only from a value that is not blank.
#[derive(Clone, PartialEq, Eq)]
pub struct Required(String);

impl Required {
    /// For settings built in code (tests, tools). Panics on an empty value.
    pub fn new(value: impl Into<String>) -> Self {
        Required::try_from(value.into()).expect("a Required setting must not be empty")
    }
}

crate::domain::string_newtype!(Required);

impl TryFrom<String> for Required {
    type Error = &'static str;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.trim().is_empty() {
            Err("must not be empty")
        } else {
            Ok(Required(value))
        }
    }
}

/// A quota for every [`Class`], in [`Class::ALL`] order: read from a map keyed by class
/// that must name each one, so a lookup cannot miss.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "BTreeMap<Class, QuotaEntry>")]
pub struct Quotas([QuotaSettings; Class::ALL.len()]);

impl Quotas {
    /// The same quota for every class.
    pub fn all(quota: QuotaSettings) -> Self {
        Quotas([quota; Class::ALL.len()])
    }

    pub fn get(&self, class: Class) -> QuotaSettings {
        self.0[class as usize]
    }

    pub fn set(&mut self, class: Class, quota: QuotaSettings) {
        self.0[class as usize] = quota;
    }
}

/// One class's entry as written: checked whole by [`Quotas`], so the message names the
/// class (a flattened map's errors carry no key path of their own).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaEntry {
    per_minute: u32,
    burst: u32,
}

impl TryFrom<BTreeMap<Class, QuotaEntry>> for Quotas {
    type Error = String;

    fn try_from(mut map: BTreeMap<Class, QuotaEntry>) -> Result<Self, String> {
        let mut quotas = Quotas::all(QuotaSettings {
            per_minute: NonZeroU32::MIN,
            burst: NonZeroU32::MIN,
        });
        for class in Class::ALL {
            let name = class.as_str();
            let entry = map.remove(&class).ok_or(format!("{name} needs a quota"))?;
            let (Some(per_minute), Some(burst)) = (
                NonZeroU32::new(entry.per_minute),
                NonZeroU32::new(entry.burst),
            ) else {
                return Err(format!(
                    "{name}: per_minute and burst must be greater than 0"
                ));
            };
            quotas.set(class, QuotaSettings { per_minute, burst });
        }
        Ok(quotas)
    }
}

/// A quota: requests per minute and the burst allowed at once, neither 0.
#[derive(Debug, Clone, Copy)]
pub struct QuotaSettings {
    pub per_minute: NonZeroU32,
    pub burst: NonZeroU32,
}
