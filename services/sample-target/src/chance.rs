//! Stateless, reproducible pseudo-randomness keyed by request sequence number.
//!
//! Every request draws a sequence number from one atomic counter, and each
//! decision (latency sample, injected error) is a hash of `(seed, number,
//! stream)`. There is no generator state to share or lock between threads, and
//! for a given seed the set of decisions over the first N requests is the same
//! however the requests interleave across connections and threads.

/// A uniform value in `[0, 1)` for request `n`, decision stream `stream`.
pub fn unit(seed: u64, n: u64, stream: u64) -> f64 {
    let x = splitmix64(seed ^ splitmix64(n.wrapping_mul(4).wrapping_add(stream)));
    // 53 random bits fill an f64 mantissa exactly.
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// SplitMix64's finaliser: a cheap bijective mix with good avalanche.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_in_range_and_roughly_uniform() {
        let n = 100_000;
        let mut buckets = [0u32; 10];
        for i in 0..n {
            let u = unit(7, i, 1);
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        for count in buckets {
            // expected 10,000 per bucket; 5 sigma is about 470
            assert!((9_500..10_500).contains(&count), "bucket count {count}");
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        assert_ne!(unit(1, 5, 0), unit(1, 5, 1));
        assert_ne!(unit(1, 5, 0), unit(2, 5, 0));
        assert_eq!(unit(3, 9, 2), unit(3, 9, 2));
    }
}
