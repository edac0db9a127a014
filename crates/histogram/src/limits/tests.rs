use std::io::Write;

use super::*;
use crate::LatencyHistogram;

fn header(cookie: u32, payload: u32, digits: u32, low: u64, high: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(cookie.to_be_bytes());
    bytes.extend(payload.to_be_bytes());
    bytes.extend(0u32.to_be_bytes());
    bytes.extend(digits.to_be_bytes());
    bytes.extend(low.to_be_bytes());
    bytes.extend(high.to_be_bytes());
    bytes.extend(1.0f64.to_be_bytes());
    bytes
}

fn deflated(v2: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(v2).unwrap();
    let compressed = encoder.finish().unwrap();
    let mut bytes = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
    bytes.extend((compressed.len() as u32).to_be_bytes());
    bytes.extend(compressed);
    bytes
}

fn decode_error(bytes: &[u8]) -> String {
    LatencyHistogram::decode(bytes).unwrap_err().to_string()
}

#[test]
fn a_header_asking_for_4_gib_is_refused_before_allocating() {
    // 13 bytes that made hdrhistogram's deserializer allocate u32::MAX bytes.
    let mut bytes = header(V2_COOKIE, u32::MAX, 3, 1, 2048);
    bytes.truncate(V2_HEADER_BYTES);
    assert_eq!(
        decode_error(&bytes),
        "failed to decode histogram: the header says 4294967295 payload bytes but 0 follow"
    );
}

#[test]
fn the_encoded_size_limit_is_inclusive() {
    let mut bytes = vec![0u8; MAX_ENCODED_BYTES + 1];
    assert_eq!(
        decode_error(&bytes),
        "failed to decode histogram: 1048577 bytes, over the limit of 1024 KiB"
    );
    bytes.truncate(MAX_ENCODED_BYTES);
    // At the limit the size passes; the (zero) cookie is what is wrong.
    assert!(decode_error(&bytes).contains("unknown format cookie 0x00000000"));
}

#[test]
fn a_decompression_bomb_stops_at_the_inflate_limit() {
    let mut v2 = header(V2_COOKIE, 0, 3, 1, 2048);
    // Zeros compress ~1000:1: a few KiB that inflate past the limit.
    v2.resize(MAX_DECODED_BYTES + 1, 0);
    let bytes = deflated(&v2);
    assert!(bytes.len() < MAX_ENCODED_BYTES / 50, "{}", bytes.len());
    assert_eq!(
        decode_error(&bytes),
        "failed to decode histogram: it inflates to more than 1024 KiB"
    );
}

#[test]
fn digits_and_range_beyond_the_limits_are_refused() {
    let bytes = header(V2_COOKIE, 0, MAX_SIGNIFICANT_DIGITS + 1, 1, 2048);
    assert_eq!(
        decode_error(&bytes),
        "failed to decode histogram: 4 significant digits, over the limit of 3"
    );
    let bytes = deflated(&header(V2_COOKIE, 0, 3, 1, MAX_TRACKABLE_US + 1));
    assert_eq!(
        decode_error(&bytes),
        format!(
            "failed to decode histogram: highest trackable value {} us is over the limit of {MAX_TRACKABLE_US} us",
            MAX_TRACKABLE_US + 1
        )
    );
    // At the limit: an empty histogram.
    let bytes = header(V2_COOKIE, 0, 3, 1, MAX_TRACKABLE_US);
    assert!(LatencyHistogram::decode(&bytes).unwrap().is_empty());
}

#[test]
fn the_largest_value_round_trips_within_the_limits() {
    let mut h = LatencyHistogram::new();
    h.record_us(u64::MAX);
    h.record_us(MAX_VALUE_US);
    h.record_us(1);
    let back = LatencyHistogram::decode(&h.encode().unwrap()).unwrap();
    assert_eq!(back.len(), 3);
    // u64::MAX was recorded as the largest value.
    assert_eq!(back.iter_recorded().last().unwrap().1, 2);
    let plain = LatencyHistogram::decode(&h.encode_uncompressed().unwrap()).unwrap();
    assert_eq!(plain, back);
}

#[test]
fn counts_over_the_total_limit_are_refused_and_the_limit_itself_passes() {
    let mut h = LatencyHistogram::new();
    h.record_n_us(100, MAX_TOTAL_COUNT);
    assert_eq!(
        LatencyHistogram::decode(&h.encode().unwrap())
            .unwrap()
            .len(),
        MAX_TOTAL_COUNT
    );
    h.record_us(200);
    assert_eq!(
        decode_error(&h.encode().unwrap()),
        format!(
            "failed to decode histogram: it counts {} values, over the limit of {MAX_TOTAL_COUNT}",
            MAX_TOTAL_COUNT + 1
        )
    );
}

#[test]
fn a_compressed_length_past_the_end_is_refused() {
    let mut bytes = deflated(&header(V2_COOKIE, 0, 3, 1, 2048));
    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_error(&bytes).contains("the header says 4294967295 compressed bytes but"));
}
