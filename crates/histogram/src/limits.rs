//! What a histogram from elsewhere (a worker's delta, a stored row) may
//! be: checked before `hdrhistogram` sees the bytes, because its
//! deserializer trusts the header (a 13-byte input can ask it for a 4 GiB
//! buffer) and inflates without a bound.

use std::borrow::Cow;
use std::io::Read;

use crate::HistogramError;

/// Largest encoded histogram accepted (bytes, compressed or not).
pub const MAX_ENCODED_BYTES: usize = 1 << 20;

/// Largest V2 encoding a DEFLATE one may inflate to (bytes): a bound on
/// decompression bombs. A 3-digit histogram up to [`MAX_VALUE_US`] encodes
/// in under 600 KiB even with every bucket set.
pub const MAX_DECODED_BYTES: usize = 1 << 20;

/// Largest value recorded, in microseconds (about 12.7 days); larger ones
/// are recorded as this.
pub const MAX_VALUE_US: u64 = 1 << 40;

/// Largest highest-trackable value a decoded header may declare: the range
/// a histogram holding [`MAX_VALUE_US`] grows to, with room for rounding.
pub const MAX_TRACKABLE_US: u64 = MAX_VALUE_US << 1;

/// Most significant digits a decoded histogram may have (cicada records
/// with 3; more would only cost memory: 5 digits over the full range are
/// 50 MB of counts).
pub const MAX_SIGNIFICANT_DIGITS: u32 = 3;

/// Most values one decoded histogram may count: far above any second of
/// any worker, far below where sums of them overflow.
pub const MAX_TOTAL_COUNT: u64 = 1 << 48;

const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// cookie, payload length, normalizing offset, digits, low, high, ratio.
const V2_HEADER_BYTES: usize = 40;

fn bad(message: String) -> HistogramError {
    HistogramError::Decode(message)
}

/// The plain V2 encoding in `bytes` (inflated if it is V2 + DEFLATE), its
/// header within the limits above.
pub(crate) fn checked_v2(bytes: &[u8]) -> Result<Cow<'_, [u8]>, HistogramError> {
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(bad(format!(
            "{} bytes, over the limit of {} KiB",
            bytes.len(),
            MAX_ENCODED_BYTES >> 10
        )));
    }
    let v2 = match cookie(bytes)? {
        V2_COOKIE => Cow::Borrowed(bytes),
        V2_COMPRESSED_COOKIE => Cow::Owned(inflate(bytes)?),
        other => {
            return Err(bad(format!(
                "unknown format cookie {other:#010x}; expected HdrHistogram V2 or V2 + DEFLATE"
            )));
        }
    };
    if cookie(&v2)? != V2_COOKIE {
        return Err(bad("the inflated payload is not a V2 histogram".to_owned()));
    }
    check_header(&v2)?;
    Ok(v2)
}

fn cookie(bytes: &[u8]) -> Result<u32, HistogramError> {
    be_u32(bytes, 0).ok_or_else(|| bad(format!("{} bytes is too short for a header", bytes.len())))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes(slice.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at + 8)?;
    Some(u64::from_be_bytes(slice.try_into().ok()?))
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, HistogramError> {
    let length = be_u32(bytes, 4)
        .ok_or_else(|| bad("too short for a compressed header".to_owned()))?
        as usize;
    let compressed = bytes.get(8..).unwrap_or_default();
    if length > compressed.len() {
        return Err(bad(format!(
            "the header says {length} compressed bytes but {} follow",
            compressed.len()
        )));
    }
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..length])
        .take(MAX_DECODED_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| bad(format!("bad DEFLATE data: {error}")))?;
    if inflated.len() > MAX_DECODED_BYTES {
        return Err(bad(format!(
            "it inflates to more than {} KiB",
            MAX_DECODED_BYTES >> 10
        )));
    }
    Ok(inflated)
}

fn check_header(v2: &[u8]) -> Result<(), HistogramError> {
    let short = || bad(format!("{} bytes is too short for a V2 header", v2.len()));
    let payload = be_u32(v2, 4).ok_or_else(short)? as usize;
    let digits = be_u32(v2, 12).ok_or_else(short)?;
    let high = be_u64(v2, 24).ok_or_else(short)?;
    be_u64(v2, V2_HEADER_BYTES - 8).ok_or_else(short)?;
    let follows = v2.len() - V2_HEADER_BYTES;
    if payload != follows {
        return Err(bad(format!(
            "the header says {payload} payload bytes but {follows} follow"
        )));
    }
    if digits > MAX_SIGNIFICANT_DIGITS {
        return Err(bad(format!(
            "{digits} significant digits, over the limit of {MAX_SIGNIFICANT_DIGITS}"
        )));
    }
    if high > MAX_TRACKABLE_US {
        return Err(bad(format!(
            "highest trackable value {high} us is over the limit of {MAX_TRACKABLE_US} us"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
