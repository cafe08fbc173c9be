//! Integer money. Amounts are nano-units (1e-9) of a currency in an `i64`, so sums are
//! exact and a ledger never holds a float.

use std::fmt;

use crate::usage::Usage;

/// Nano-units per currency unit.
pub const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// An ISO 4217 currency code, such as `USD` or `CNY`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");
    pub const CNY: Currency = Currency(*b"CNY");

    /// Parses a three-letter code; lower case is accepted and upper-cased.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        Some(Currency([bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase(), bytes[2].to_ascii_uppercase()]))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in nano-units of `currency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub nanos: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(nanos: i64, currency: Currency) -> Money {
        Money { nanos, currency }
    }

    /// The amount as an exact decimal string (`0.00027`, `12`, `-3.5`).
    pub fn to_decimal(&self) -> String {
        format_nanos(self.nanos)
    }
}

/// Formats nano-units as a decimal number without trailing zeros.
pub fn format_nanos(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let units = abs / NANOS_PER_UNIT as u64;
    let frac = abs % NANOS_PER_UNIT as u64;
    if frac == 0 {
        return format!("{sign}{units}");
    }
    let frac = format!("{frac:09}");
    format!("{sign}{units}.{}", frac.trim_end_matches('0'))
}

/// Parses a decimal amount (`"0.27"`, `"10"`, and as JSON encoders may write small
/// numbers, `"1e-06"`) into nano-units, exactly. A value that needs more than nine
/// fractional digits is rejected rather than rounded.
pub fn parse_decimal_nanos(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, number) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match number.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.strip_prefix('+').unwrap_or(exponent).parse::<i32>().ok()?),
        None => (number, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // The digits, and how many of them are fractional once the exponent is applied;
    // trailing zeros are not significant.
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    let mut scale = i64::try_from(frac.len()).ok()? - i64::from(exponent);
    let mut significant = digits;
    while scale > 0 && significant.ends_with('0') {
        significant = &significant[..significant.len() - 1];
        scale -= 1;
    }
    if significant.is_empty() {
        return Some(0);
    }
    if scale > 9 || significant.len() > 19 {
        return None;
    }
    let value: i64 = significant.parse().ok()?;
    let nanos = value.checked_mul(10_i64.checked_pow(u32::try_from(9 - scale).ok()?)?)?;
    Some(if negative { -nanos } else { nanos })
}

/// Converts a decimal written as an `f64` (as TOML numbers arrive) to nano-units.
/// Goes through the shortest decimal representation so `0.27` becomes exactly
/// 270_000_000 nanos.
pub fn f64_to_nanos(value: f64) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    let text = format!("{value}");
    if text.contains('e') || text.contains('E') {
        let nanos = (value * NANOS_PER_UNIT as f64).round();
        if nanos.abs() > i64::MAX as f64 {
            return None;
        }
        return Some(nanos as i64);
    }
    parse_decimal_nanos(&text)
}

/// Prices per million tokens, in nano-units of `currency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input: i64,
    pub output: i64,
    /// Price of input tokens read from the prompt cache; defaults to `input`.
    pub cached_input: i64,
    /// Price of input tokens written to the prompt cache (Anthropic charges 1.25× input
    /// for its default five-minute cache); defaults to `input`.
    pub cache_write: i64,
    pub currency: Currency,
}

impl Price {
    /// A price whose cache writes cost the same as other input.
    pub const fn per_million(input: i64, output: i64, cached_input: i64, currency: Currency) -> Price {
        Price { input, output, cached_input, cache_write: input, currency }
    }

    /// The cost of `usage` at this price. Rounds up to the next nano-unit.
    pub fn cost(&self, usage: &Usage) -> Money {
        let cached = usage.cached_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let per_million = i128::from(self.input) * i128::from(usage.uncached_unwritten_input())
            + i128::from(self.cached_input) * i128::from(cached)
            + i128::from(self.cache_write) * i128::from(written)
            + i128::from(self.output) * i128::from(usage.output_tokens);
        let nanos = (per_million + 999_999) / 1_000_000;
        Money::new(i64::try_from(nanos).unwrap_or(i64::MAX), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trip() {
        assert_eq!(parse_decimal_nanos("0.27"), Some(270_000_000));
        assert_eq!(parse_decimal_nanos("10"), Some(10_000_000_000));
        assert_eq!(parse_decimal_nanos(".5"), Some(500_000_000));
        assert_eq!(parse_decimal_nanos("-1.000000001"), Some(-1_000_000_001));
        assert_eq!(parse_decimal_nanos("1.0000000001"), None);
        assert_eq!(parse_decimal_nanos("abc"), None);
        // Exponents, as JSON encoders write small and large numbers.
        assert_eq!(parse_decimal_nanos("1e-06"), Some(1_000));
        assert_eq!(parse_decimal_nanos("1E-9"), Some(1));
        assert_eq!(parse_decimal_nanos("2.5e3"), Some(2_500_000_000_000));
        assert_eq!(parse_decimal_nanos("1e+2"), Some(100_000_000_000));
        assert_eq!(parse_decimal_nanos("-1.5e-1"), Some(-150_000_000));
        assert_eq!(parse_decimal_nanos("1e-10"), None);
        assert_eq!(parse_decimal_nanos("1e30"), None);
        assert_eq!(parse_decimal_nanos("1e"), None);
        assert_eq!(parse_decimal_nanos("e5"), None);
        // Insignificant zeros.
        assert_eq!(parse_decimal_nanos("0.1000000000"), Some(100_000_000));
        assert_eq!(parse_decimal_nanos("0"), Some(0));
        assert_eq!(parse_decimal_nanos("000.000"), Some(0));
        assert_eq!(parse_decimal_nanos("9223372036.854775807"), Some(i64::MAX));
        assert_eq!(parse_decimal_nanos("9223372036.854775808"), None);
        assert_eq!(format_nanos(270_000_000), "0.27");
        assert_eq!(format_nanos(10_000_000_000), "10");
        assert_eq!(format_nanos(-1_500_000_000), "-1.5");
        assert_eq!(format_nanos(1), "0.000000001");
        assert_eq!(f64_to_nanos(0.27), Some(270_000_000));
        assert_eq!(f64_to_nanos(1.1), Some(1_100_000_000));
        assert_eq!(f64_to_nanos(0.0028), Some(2_800_000));
    }

    #[test]
    fn cost_uses_cached_price_for_cached_input() {
        let price = Price::per_million(270_000_000, 1_100_000_000, 70_000_000, Currency::USD);
        let usage =
            Usage { input_tokens: 1_000_000, cached_tokens: 400_000, output_tokens: 500_000, ..Usage::default() };
        // 600k * 0.27 + 400k * 0.07 + 500k * 1.10 = 0.162 + 0.028 + 0.55 = 0.74
        assert_eq!(price.cost(&usage), Money::new(740_000_000, Currency::USD));
    }

    #[test]
    fn cost_prices_cache_writes_apart() {
        // Anthropic-like: input 3, output 15, cache read 0.3, cache write 3.75 per million.
        let price = Price {
            input: 3_000_000_000,
            output: 15_000_000_000,
            cached_input: 300_000_000,
            cache_write: 3_750_000_000,
            currency: Currency::USD,
        };
        let usage = Usage {
            input_tokens: 1_000_000 + 2_000_000 + 4_000_000,
            cached_tokens: 2_000_000,
            cache_write_tokens: 4_000_000,
            output_tokens: 1_000_000,
            ..Usage::default()
        };
        // 1M × 3 + 2M × 0.3 + 4M × 3.75 + 1M × 15 = 33.6
        assert_eq!(price.cost(&usage).nanos, 33_600_000_000);
        // Without a separate write price, writes cost input.
        let flat = Price::per_million(3_000_000_000, 15_000_000_000, 300_000_000, Currency::USD);
        assert_eq!(flat.cost(&usage).nanos, 30_600_000_000);
    }

    #[test]
    fn cost_rounds_up_to_a_nano() {
        let price = Price::per_million(1, 1, 1, Currency::CNY);
        let usage = Usage { input_tokens: 1, ..Usage::default() };
        assert_eq!(price.cost(&usage).nanos, 1);
    }

    #[test]
    fn currency_parse() {
        assert_eq!(Currency::parse("usd"), Some(Currency::USD));
        assert_eq!(Currency::parse("US"), None);
        assert_eq!(Currency::parse("U1D"), None);
    }
}
