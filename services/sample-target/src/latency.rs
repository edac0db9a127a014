//! Injected latency: a fixed delay or a distribution, sampled per request.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::chance;
use crate::error::ConfigError;

/// Decision streams of [`chance::unit`] used for latency samples.
const STREAM_A: u64 = 0;
const STREAM_B: u64 = 2;

/// How long the target waits before answering a request.
///
/// Written as (and parsed from):
/// - `0` or `none`: answer at once;
/// - `20ms` (any `humantime` duration): always that long;
/// - `uniform:10ms..30ms`: uniform between the two bounds;
/// - `normal:20ms,5ms`: normal with that mean and standard deviation,
///   negative samples clamped to zero;
/// - `exp:20ms`: exponential with that mean (a long tail, as queues produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// No delay.
    #[default]
    None,
    /// Always this delay.
    Fixed(Duration),
    /// Uniform in `[low, high]`.
    Uniform { low: Duration, high: Duration },
    /// Normal, clamped at zero.
    Normal { mean: Duration, std_dev: Duration },
    /// Exponential with this mean.
    Exponential { mean: Duration },
}

impl Latency {
    /// The delay for request number `n` under `seed`; the same inputs give the
    /// same delay.
    pub fn sample(&self, seed: u64, n: u64) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform { low, high } => {
                low + (high - low).mul_f64(chance::unit(seed, n, STREAM_A))
            }
            Latency::Normal { mean, std_dev } => {
                // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
                let u1 = 1.0 - chance::unit(seed, n, STREAM_A);
                let u2 = chance::unit(seed, n, STREAM_B);
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let secs = mean.as_secs_f64() + std_dev.as_secs_f64() * z;
                Duration::from_secs_f64(secs.max(0.0))
            }
            Latency::Exponential { mean } => {
                let u = 1.0 - chance::unit(seed, n, STREAM_A);
                mean.mul_f64(-u.ln())
            }
        }
    }

    /// Whether every sample is zero, so the sleep can be skipped entirely.
    pub fn is_none(&self) -> bool {
        match *self {
            Latency::None => true,
            Latency::Fixed(d) => d.is_zero(),
            Latency::Uniform { high, .. } => high.is_zero(),
            Latency::Normal { mean, std_dev } => mean.is_zero() && std_dev.is_zero(),
            Latency::Exponential { mean } => mean.is_zero(),
        }
    }
}

impl FromStr for Latency {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let spec = s.trim();
        let invalid = |reason: &str| ConfigError::InvalidLatency {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let duration = |text: &str| {
            humantime::parse_duration(text.trim())
                .map_err(|e| invalid(&format!("bad duration {:?}: {e}", text.trim())))
        };
        if spec.is_empty() || spec == "0" || spec.eq_ignore_ascii_case("none") {
            return Ok(Latency::None);
        }
        let Some((kind, args)) = spec.split_once(':') else {
            return Ok(Latency::Fixed(duration(spec)?));
        };
        match kind.trim().to_ascii_lowercase().as_str() {
            "uniform" => {
                let (low, high) = args
                    .split_once("..")
                    .ok_or_else(|| invalid("uniform needs `LOW..HIGH`"))?;
                let (low, high) = (duration(low)?, duration(high)?);
                if low > high {
                    return Err(invalid("the low bound is above the high bound"));
                }
                Ok(Latency::Uniform { low, high })
            }
            "normal" => {
                let (mean, std_dev) = args
                    .split_once(',')
                    .ok_or_else(|| invalid("normal needs `MEAN,STD_DEV`"))?;
                Ok(Latency::Normal {
                    mean: duration(mean)?,
                    std_dev: duration(std_dev)?,
                })
            }
            "exp" | "exponential" => Ok(Latency::Exponential {
                mean: duration(args)?,
            }),
            _ => Err(invalid("unknown distribution")),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use humantime::format_duration as d;
        match *self {
            Latency::None => f.write_str("none"),
            Latency::Fixed(x) => write!(f, "{}", d(x)),
            Latency::Uniform { low, high } => write!(f, "uniform:{}..{}", d(low), d(high)),
            Latency::Normal { mean, std_dev } => write!(f, "normal:{},{}", d(mean), d(std_dev)),
            Latency::Exponential { mean } => write!(f, "exp:{}", d(mean)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn parses_every_form() {
        assert_eq!("0".parse::<Latency>().unwrap(), Latency::None);
        assert_eq!("none".parse::<Latency>().unwrap(), Latency::None);
        assert_eq!("20ms".parse::<Latency>().unwrap(), Latency::Fixed(20 * MS));
        assert_eq!(
            "uniform:10ms..30ms".parse::<Latency>().unwrap(),
            Latency::Uniform {
                low: 10 * MS,
                high: 30 * MS
            }
        );
        assert_eq!(
            "normal:20ms,5ms".parse::<Latency>().unwrap(),
            Latency::Normal {
                mean: 20 * MS,
                std_dev: 5 * MS
            }
        );
        assert_eq!(
            "exp:20ms".parse::<Latency>().unwrap(),
            Latency::Exponential { mean: 20 * MS }
        );
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "20",
            "uniform:30ms..10ms",
            "uniform:10ms",
            "normal:5ms",
            "gamma:1ms",
            "x",
        ] {
            assert!(bad.parse::<Latency>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn distributions_have_their_means() {
        let n = 20_000;
        let mean_ms = |latency: Latency| {
            (0..n)
                .map(|i| latency.sample(42, i).as_secs_f64())
                .sum::<f64>()
                / n as f64
                * 1e3
        };
        let uniform = mean_ms(Latency::Uniform {
            low: 10 * MS,
            high: 30 * MS,
        });
        let normal = mean_ms(Latency::Normal {
            mean: 20 * MS,
            std_dev: 5 * MS,
        });
        let exp = mean_ms(Latency::Exponential { mean: 20 * MS });
        for (name, mean) in [("uniform", uniform), ("normal", normal), ("exp", exp)] {
            assert!((19.0..21.0).contains(&mean), "{name} mean {mean} ms");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(low in 0u64..10_000, extra in 0u64..10_000, kind in 0u8..5) {
            let (a, b) = (Duration::from_micros(low), Duration::from_micros(low + extra));
            let latency = match kind {
                0 => Latency::None,
                1 => Latency::Fixed(a),
                2 => Latency::Uniform { low: a, high: b },
                3 => Latency::Normal { mean: a, std_dev: b },
                _ => Latency::Exponential { mean: a },
            };
            prop_assert_eq!(latency.to_string().parse::<Latency>().unwrap(), latency);
        }

        #[test]
        fn uniform_stays_in_bounds(low in 0u64..10_000, extra in 0u64..10_000, n: u64, seed: u64) {
            let (low, high) = (Duration::from_micros(low), Duration::from_micros(low + extra));
            let sample = Latency::Uniform { low, high }.sample(seed, n);
            prop_assert!(low <= sample && sample <= high);
        }
    }
}
