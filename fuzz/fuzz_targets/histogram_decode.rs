//! Bytes a worker sends the collector as a histogram.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok(histogram) = cicada_histogram::LatencyHistogram::decode(bytes) {
        let _ = histogram.value_at_quantile_us(0.99);
        let _ = histogram.encode();
    }
});
