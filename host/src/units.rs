//! Parsing counts and byte sizes from the command line.

/// Parses `1048576`, `1_048_576`, `2^20` or `1e6`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let bad = || format!("{s:?} is not a count (examples: 1048576, 2^20, 1e7)");
    if let Some((b, e)) = t.split_once('^') {
        let (b, e): (u64, u32) = (b.parse().map_err(|_| bad())?, e.parse().map_err(|_| bad())?);
        return b.checked_pow(e).ok_or_else(|| format!("{s} does not fit in 64 bits"));
    }
    if let Some((m, e)) = t.split_once(['e', 'E']) {
        let (m, e): (u64, u32) = (m.parse().map_err(|_| bad())?, e.parse().map_err(|_| bad())?);
        return 10u64.checked_pow(e).and_then(|p| p.checked_mul(m)).ok_or_else(|| format!("{s} does not fit in 64 bits"));
    }
    t.parse().map_err(|_| bad())
}

/// Parses a byte size: `4096`, `4KiB`, `4K`, `1.5MiB`, `256MiB`, `1GiB`
/// (binary units; `B` optional, case-insensitive).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase().replace('_', "");
    let bad = || format!("{s:?} is not a size (examples: 4096, 64KiB, 4MiB, 1GiB)");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !(0.0..1.8e19).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse() {
        assert_eq!(parse_count("1048576"), Ok(1 << 20));
        assert_eq!(parse_count("2^20"), Ok(1 << 20));
        assert_eq!(parse_count("1e7"), Ok(10_000_000));
        assert_eq!(parse_count("10_000_003"), Ok(10_000_003));
        assert!(parse_count("2^70").unwrap_err().contains("64 bits"));
        assert!(parse_count("lots").unwrap_err().contains("not a count"));
        assert!(parse_count("-1").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert!(parse_bytes("4 parsecs").is_err());
        assert!(parse_bytes("0.3").is_err());
    }

    proptest::proptest! {
        /// Any text: an answer or an error, never a panic.
        #[test]
        fn never_panic_on_any_text(s in ".*") {
            let _ = parse_count(&s);
            let _ = parse_bytes(&s);
        }

        /// Numbers written the ways the help shows parse back to themselves.
        #[test]
        fn written_sizes_parse_back(n in 0u64..(1 << 40), unit in 0usize..4) {
            let (suffix, mult) = [("", 1u64), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)][unit];
            let text = format!("{n}{suffix}");
            match n.checked_mul(mult).filter(|&b| (b as f64) < 1.8e19) {
                Some(b) => proptest::prop_assert_eq!(parse_bytes(&text), Ok(b)),
                None => proptest::prop_assert!(parse_bytes(&text).is_err()),
            }
            proptest::prop_assert_eq!(parse_count(&n.to_string()), Ok(n));
            let grouped = n.to_string().as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).unwrap_or("")).collect::<Vec<_>>().join("_");
            proptest::prop_assert_eq!(parse_count(&grouped), Ok(n));
        }

        #[test]
        fn powers_parse_or_say_they_overflow(b in 0u64..1000, e in 0u32..80) {
            match parse_count(&format!("{b}^{e}")) {
                Ok(v) => proptest::prop_assert_eq!(Some(v), b.checked_pow(e)),
                Err(msg) => proptest::prop_assert!(b.checked_pow(e).is_none() && msg.contains("64 bits"), "{}", msg),
            }
        }
    }
}
