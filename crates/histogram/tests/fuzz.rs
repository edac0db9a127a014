//! Fuzzing the histogram decoder (bytes a worker sends): any input decodes
//! or is an error, never a panic or an unbounded allocation.
//!
//! Bounded here (`CICADA_FUZZ_CASES`, default 512 per property); see
//! docs/FUZZING.md for the long runs.

use cicada_histogram::LatencyHistogram;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("CICADA_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(512)
}

/// A valid encoding of some recorded values, plain or compressed.
fn encoded() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((1u64..u64::MAX, 1u64..1_000_000), 0..40),
        any::<bool>(),
    )
        .prop_map(|(values, deflate)| {
            let mut h = LatencyHistogram::new();
            for (value, count) in values {
                h.record_n_us(value, count);
            }
            if deflate {
                h.encode().unwrap()
            } else {
                h.encode_uncompressed().unwrap()
            }
        })
}

/// A valid encoding with a few bytes overwritten, cut short or extended.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        encoded(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(mut bytes, writes, cut, tail)| {
            for (at, byte) in writes {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            bytes.extend(tail);
            bytes
        })
}

fn decodes_or_errors(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(h) = LatencyHistogram::decode(bytes) {
        // What decodes is usable: its summary and its re-encoding work.
        prop_assert!(h.len() <= cicada_histogram::MAX_TOTAL_COUNT);
        let _ = h.value_at_quantile_us(0.99);
        let again = LatencyHistogram::decode(&h.encode().unwrap()).unwrap();
        prop_assert_eq!(again.len(), h.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decodes_or_errors(&bytes)?;
    }

    /// Arbitrary bytes after a real cookie reach past the first check.
    #[test]
    fn arbitrary_bytes_after_a_cookie(
        compressed in any::<bool>(),
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let cookie: u32 = if compressed { 0x1c84_9314 } else { 0x1c84_9313 };
        let mut bytes = cookie.to_be_bytes().to_vec();
        bytes.extend(rest);
        decodes_or_errors(&bytes)?;
    }

    #[test]
    fn mutated_encodings(bytes in mutated()) {
        decodes_or_errors(&bytes)?;
    }

    #[test]
    fn valid_encodings_round_trip(bytes in encoded()) {
        let h = LatencyHistogram::decode(&bytes).unwrap();
        prop_assert_eq!(LatencyHistogram::decode(&h.encode().unwrap()).unwrap(), h);
    }
}
