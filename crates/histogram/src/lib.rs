//! Latency histograms as cicada moves them around: recorded by workers,
//! shipped as bytes in per-second deltas, merged exactly by the collector and
//! summarised into percentiles for tables, JSON and comparisons.
//!
//! Values are microseconds in an auto-resizing HdrHistogram with 3 significant
//! digits: any recorded value is reported within 0.1% of its true value, and
//! merging two histograms is exact (counts are added bucket by bucket), which
//! is why percentiles across workers are computed from merged histograms and
//! never averaged.
//!
//! - [`LatencyHistogram`]: record, merge, encode / decode.
//! - [`Summary`]: the numbers cicada reports for one endpoint or a total.
//! - `limits`: what [`LatencyHistogram::decode`] accepts from untrusted
//!   bytes (size, inflated size, range, digits, total count).

mod limits;
mod summary;

pub use limits::{
    MAX_DECODED_BYTES, MAX_ENCODED_BYTES, MAX_SIGNIFICANT_DIGITS, MAX_TOTAL_COUNT,
    MAX_TRACKABLE_US, MAX_VALUE_US,
};
pub use summary::{Counts, Summary};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};

/// Significant decimal digits kept for every value (0.1% resolution).
const SIGNIFICANT_DIGITS: u8 = 3;

/// Errors from decoding or merging histograms.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("failed to decode histogram: {0}")]
    Decode(String),
    #[error("failed to encode histogram: {0}")]
    Encode(String),
    #[error("failed to merge histograms: {0}")]
    Merge(String),
}

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl LatencyHistogram {
    /// An empty histogram that grows to fit whatever it records.
    pub fn new() -> Self {
        let mut inner =
            Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is a valid precision");
        inner.auto(true);
        Self { inner }
    }

    /// Records one latency. Zero is recorded as 1 us, the resolution floor;
    /// anything over [`MAX_VALUE_US`] as that (so every encoded histogram
    /// decodes within the limits).
    #[inline]
    pub fn record_us(&mut self, micros: u64) {
        let micros = micros.clamp(1, MAX_VALUE_US);
        // `record` grows the range (auto-resize); `saturating_record` would
        // clamp to the current range instead, so it is only the fallback for
        // values no histogram can hold.
        if self.inner.record(micros).is_err() {
            self.inner.saturating_record(micros);
        }
    }

    /// Records `count` occurrences of one latency (clamped as in [`record_us`](Self::record_us)).
    pub fn record_n_us(&mut self, micros: u64, count: u64) {
        let micros = micros.clamp(1, MAX_VALUE_US);
        if count > 0 {
            // auto-resize makes this infallible in practice; fall back to
            // saturating single records if it ever is not.
            if self.inner.record_n(micros, count).is_err() {
                self.inner.saturating_record_n(micros, count);
            }
        }
    }

    /// Adds every count of `other` into `self` (exact).
    pub fn merge(&mut self, other: &LatencyHistogram) -> Result<(), HistogramError> {
        self.inner
            .add(&other.inner)
            .map_err(|error| HistogramError::Merge(format!("{error:?}")))
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Clears every count, keeping the allocated buckets.
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// The value at quantile `q` (0.0..=1.0) in microseconds; 0 when empty.
    pub fn value_at_quantile_us(&self, q: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        self.inner.value_at_quantile(q)
    }

    /// Largest recorded value (within resolution) in microseconds; 0 when empty.
    pub fn max_us(&self) -> u64 {
        if self.is_empty() { 0 } else { self.inner.max() }
    }

    /// Smallest recorded value (within resolution) in microseconds; 0 when empty.
    pub fn min_us(&self) -> u64 {
        if self.is_empty() { 0 } else { self.inner.min() }
    }

    /// Mean of the recorded values in microseconds; 0 when empty.
    pub fn mean_us(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.inner.mean()
        }
    }

    /// Serializes to the HdrHistogram V2 + DEFLATE format (portable across
    /// HdrHistogram implementations in other languages).
    pub fn encode(&self) -> Result<Vec<u8>, HistogramError> {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.inner, &mut buf)
            .map_err(|error| HistogramError::Encode(format!("{error:?}")))?;
        Ok(buf)
    }

    /// Serializes to the HdrHistogram V2 format without DEFLATE: about twice
    /// the bytes of [`encode`](Self::encode) but ~4x cheaper to decode, for
    /// stored rows that are read far more often than written (the
    /// rollup of minutes and 10-second blocks). [`decode`](Self::decode) reads both.
    pub fn encode_uncompressed(&self) -> Result<Vec<u8>, HistogramError> {
        let mut buf = Vec::new();
        V2Serializer::new()
            .serialize(&self.inner, &mut buf)
            .map_err(|error| HistogramError::Encode(format!("{error:?}")))?;
        Ok(buf)
    }

    /// Decodes a histogram written by [`encode`](Self::encode) or
    /// [`encode_uncompressed`](Self::encode_uncompressed) (or any V2 /
    /// V2 + DEFLATE HdrHistogram). An empty slice decodes to an empty histogram.
    ///
    /// The bytes may come from anyone (a worker's delta): anything outside
    /// the limits (`MAX_*`) is an error, never a panic or an unbounded
    /// allocation.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        let v2 = limits::checked_v2(bytes)?;
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &v2[..])
            .map_err(|error| HistogramError::Decode(format!("{error:?}")))?;
        // The deserializer sums counts saturating: an overflow shows here.
        if decoded.len() > MAX_TOTAL_COUNT {
            return Err(HistogramError::Decode(format!(
                "it counts {} values, over the limit of {MAX_TOTAL_COUNT}",
                decoded.len()
            )));
        }
        let mut histogram = Self::new();
        histogram.merge(&LatencyHistogram { inner: decoded })?;
        Ok(histogram)
    }

    /// Iterates over the distinct recorded values as (value_us, count).
    pub fn iter_recorded(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.inner
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_round_trip() {
        let empty = LatencyHistogram::new();
        let bytes = empty.encode().unwrap();
        let back = LatencyHistogram::decode(&bytes).unwrap();
        assert!(back.is_empty());
        assert!(LatencyHistogram::decode(&[]).unwrap().is_empty());
    }

    #[test]
    fn recording_grows_the_range_of_a_fresh_histogram() {
        let mut h = LatencyHistogram::new();
        h.record_us(30_000_000);
        h.record_us(7);
        assert_eq!(h.len(), 2);
        assert!((h.max_us() as f64 - 30_000_000.0).abs() / 30_000_000.0 < 0.001);
        assert_eq!(h.min_us(), 7);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let error = LatencyHistogram::decode(b"not a histogram").unwrap_err();
        assert!(matches!(error, HistogramError::Decode(_)));
    }

    #[test]
    fn quantiles_are_within_resolution() {
        let mut h = LatencyHistogram::new();
        for v in 1..=100_000u64 {
            h.record_us(v);
        }
        let p50 = h.value_at_quantile_us(0.5) as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.001, "p50 {p50}");
        let p99 = h.value_at_quantile_us(0.99) as f64;
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.001, "p99 {p99}");
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(values in proptest::collection::vec(1u64..120_000_000, 0..500)) {
            let mut h = LatencyHistogram::new();
            for v in &values {
                h.record_us(*v);
            }
            let back = LatencyHistogram::decode(&h.encode().unwrap()).unwrap();
            prop_assert_eq!(back.len(), values.len() as u64);
            let original: Vec<_> = h.iter_recorded().collect();
            let decoded: Vec<_> = back.iter_recorded().collect();
            prop_assert_eq!(original, decoded);
        }

        #[test]
        fn uncompressed_round_trip_equals_the_compressed_one(values in proptest::collection::vec(1u64..120_000_000, 0..500)) {
            let mut h = LatencyHistogram::new();
            for v in &values {
                h.record_us(*v);
            }
            let plain = LatencyHistogram::decode(&h.encode_uncompressed().unwrap()).unwrap();
            let deflated = LatencyHistogram::decode(&h.encode().unwrap()).unwrap();
            prop_assert_eq!(plain.len(), values.len() as u64);
            let original: Vec<_> = h.iter_recorded().collect();
            prop_assert_eq!(&plain.iter_recorded().collect::<Vec<_>>(), &original);
            prop_assert_eq!(deflated.iter_recorded().collect::<Vec<_>>(), original);
        }

        #[test]
        fn merge_equals_recording_everything_in_one(
            a in proptest::collection::vec(1u64..60_000_000, 0..300),
            b in proptest::collection::vec(1u64..60_000_000, 0..300),
        ) {
            let mut ha = LatencyHistogram::new();
            let mut hb = LatencyHistogram::new();
            let mut all = LatencyHistogram::new();
            for v in &a { ha.record_us(*v); all.record_us(*v); }
            for v in &b { hb.record_us(*v); all.record_us(*v); }
            // Merge through the wire format, as the collector does.
            let mut merged = LatencyHistogram::decode(&ha.encode().unwrap()).unwrap();
            merged.merge(&LatencyHistogram::decode(&hb.encode().unwrap()).unwrap()).unwrap();
            prop_assert_eq!(merged.len(), all.len());
            let m: Vec<_> = merged.iter_recorded().collect();
            let e: Vec<_> = all.iter_recorded().collect();
            prop_assert_eq!(m, e);
            for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
                prop_assert_eq!(merged.value_at_quantile_us(q), all.value_at_quantile_us(q));
            }
        }
    }
}
