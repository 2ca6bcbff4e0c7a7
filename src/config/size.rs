//! Byte sizes as people write them: `"10MB"`, `"512KiB"`, `"1G"`, or a plain integer.
//!
//! Decimal units are powers of 1000 and binary units (`KiB`, `MiB`…) powers of 1024, as
//! their names say; a bare letter (`K`, `M`, `G`) is decimal. Units are case-insensitive
//! because nobody means millibits in a log size.

use std::fmt;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SizeError {
    #[error("invalid size `{0}`: expected a number with an optional unit like `10MB` or `512KiB`")]
    Syntax(String),
    #[error("unknown size unit `{unit}` in `{input}`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")]
    Unit { input: String, unit: String },
    #[error("size `{0}` is too large")]
    Overflow(String),
}

pub(super) fn parse_size(input: &str) -> Result<u64, SizeError> {
    let trimmed = input.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(SizeError::Syntax(input.to_owned()));
    }
    let number: u64 = number.parse().map_err(|_| SizeError::Overflow(input.to_owned()))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(SizeError::Unit { input: input.to_owned(), unit: unit.trim().to_owned() });
        }
    };
    number.checked_mul(multiplier).ok_or_else(|| SizeError::Overflow(input.to_owned()))
}

/// A positive number of bytes, from a size string or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"10MB\" or a number of bytes")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                let n = parse_size(v).map_err(E::custom)?;
                positive(n)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                let n = u64::try_from(v).map_err(|_| E::custom("size must be greater than zero"))?;
                positive(n)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                positive(v)
            }
        }
        fn positive<E: serde::de::Error>(n: u64) -> Result<ByteSize, E> {
            if n == 0 { Err(E::custom("size must be greater than zero")) } else { Ok(ByteSize(n)) }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("1 mib"), Ok(1 << 20));
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("7b"), Ok(7));
    }

    #[test]
    fn errors() {
        assert!(matches!(parse_size("MB"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_size("-1MB"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_size("1.5MB"), Err(SizeError::Unit { .. })));
        assert!(matches!(parse_size("10 parsecs"), Err(SizeError::Unit { .. })));
        assert!(matches!(parse_size("99999999999TB"), Err(SizeError::Overflow(_))));
    }
}
