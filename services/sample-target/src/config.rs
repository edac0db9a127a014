//! Target configuration and the per-route plan derived from it.

use std::str::FromStr;
use std::time::Duration;

use crate::chance;
use crate::error::ConfigError;
use crate::latency::Latency;
use crate::route::Route;

/// Decision stream of [`chance::unit`] for injected errors.
const ERROR_STREAM: u64 = 1;

/// How the sample target behaves.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Delay before every answer (all routes but `GET /health`).
    pub latency: Latency,
    /// Fraction of answers replaced by `500` (all routes but `GET /health`).
    pub error_rate: f64,
    /// Per-route settings that replace the two above for one route.
    pub routes: Vec<RouteOverride>,
    /// Seed of the latency and error decisions; a run with the same seed and
    /// the same number of requests injects the same number of errors.
    pub seed: u64,
    /// How long shutdown waits for in-flight requests before giving up.
    pub shutdown_grace: Duration,
    /// HTTPS (and client certificates) instead of plain HTTP.
    pub tls: Option<crate::tls::TlsSettings>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            latency: Latency::None,
            error_rate: 0.0,
            routes: Vec::new(),
            seed: 0,
            shutdown_grace: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// Latency and/or error rate for one route, replacing the global ones.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOverride {
    /// The route it applies to.
    pub route: Route,
    /// Replacement latency, if set.
    pub latency: Option<Latency>,
    /// Replacement error rate, if set.
    pub error_rate: Option<f64>,
}

/// A `ROUTE=VALUE` flag value such as `POST /login=50ms` or `/Test/V2=0.5`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSetting<T> {
    /// The route named left of `=`.
    pub route: Route,
    /// The value right of `=`.
    pub value: T,
}

impl<T: FromStr<Err = E>, E: Into<ConfigError>> FromStr for RouteSetting<T> {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (route, value) = s
            .rsplit_once('=')
            .ok_or_else(|| ConfigError::InvalidRouteSetting(s.to_owned()))?;
        Ok(Self {
            route: route.parse()?,
            value: value.trim().parse().map_err(Into::into)?,
        })
    }
}

/// A parsed error rate, validated to lie in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorRate(pub f64);

impl FromStr for ErrorRate {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rate: f64 = s
            .trim()
            .parse()
            .map_err(|_| ConfigError::InvalidErrorRate(s.trim().to_owned()))?;
        validate_rate(rate)?;
        Ok(Self(rate))
    }
}

fn validate_rate(rate: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ConfigError::InvalidErrorRate(rate.to_string()))
    }
}

impl TargetConfig {
    /// Checks every value; call before binding anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_rate(self.error_rate)?;
        for route in &self.routes {
            if let Some(rate) = route.error_rate {
                validate_rate(rate)?;
            }
        }
        Ok(())
    }

    /// Adds per-route latency and error-rate settings, merging those that
    /// name the same route.
    pub fn with_route_settings(
        mut self,
        latencies: impl IntoIterator<Item = RouteSetting<Latency>>,
        error_rates: impl IntoIterator<Item = RouteSetting<ErrorRate>>,
    ) -> Self {
        for setting in latencies {
            self.route_mut(setting.route).latency = Some(setting.value);
        }
        for setting in error_rates {
            self.route_mut(setting.route).error_rate = Some(setting.value.0);
        }
        self
    }

    fn route_mut(&mut self, route: Route) -> &mut RouteOverride {
        let at = match self.routes.iter().position(|o| o.route == route) {
            Some(at) => at,
            None => {
                self.routes.push(RouteOverride {
                    route,
                    latency: None,
                    error_rate: None,
                });
                self.routes.len() - 1
            }
        };
        &mut self.routes[at]
    }

    /// The plan of every route, indexed by [`Route::index`].
    pub(crate) fn plans(&self) -> [RoutePlan; Route::COUNT] {
        Route::ALL.map(|route| {
            let (latency, rate) = if route == Route::Health {
                (Latency::None, 0.0)
            } else {
                (self.latency, self.error_rate)
            };
            let custom = self.routes.iter().find(|o| o.route == route);
            RoutePlan {
                latency: custom.and_then(|o| o.latency).unwrap_or(latency),
                error_rate: custom.and_then(|o| o.error_rate).unwrap_or(rate),
            }
        })
    }
}

/// What the target does on one route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoutePlan {
    pub latency: Latency,
    pub error_rate: f64,
}

impl RoutePlan {
    /// Whether request `n` gets an injected `500`.
    pub fn fails(&self, seed: u64, n: u64) -> bool {
        self.error_rate > 0.0 && chance::unit(seed, n, ERROR_STREAM) < self.error_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_settings_parse_and_merge() {
        let config = TargetConfig {
            latency: "5ms".parse().unwrap(),
            error_rate: 0.01,
            ..TargetConfig::default()
        }
        .with_route_settings(
            ["POST /login=uniform:10ms..30ms".parse().unwrap()],
            [
                "POST /login=0.5".parse().unwrap(),
                "/Test/V2=1".parse().unwrap(),
            ],
        );
        config.validate().unwrap();
        assert_eq!(config.routes.len(), 2);
        let plans = config.plans();
        let login = plans[Route::Login.index()];
        assert_eq!(login.latency, "uniform:10ms..30ms".parse().unwrap());
        assert_eq!(login.error_rate, 0.5);
        let v2 = plans[Route::TestV2.index()];
        assert_eq!(v2.latency, Latency::Fixed(Duration::from_millis(5)));
        assert_eq!(v2.error_rate, 1.0);
        let health = plans[Route::Health.index()];
        assert_eq!((health.latency, health.error_rate), (Latency::None, 0.0));
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!("POST /login".parse::<RouteSetting<ErrorRate>>().is_err());
        assert!(
            "POST /login=1.5"
                .parse::<RouteSetting<ErrorRate>>()
                .is_err()
        );
        assert!("GET /nope=0.1".parse::<RouteSetting<ErrorRate>>().is_err());
        assert!("POST /login=fast".parse::<RouteSetting<Latency>>().is_err());
        let config = TargetConfig {
            error_rate: -0.1,
            ..TargetConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::InvalidErrorRate("-0.1".into()))
        );
    }

    #[test]
    fn error_rate_is_respected() {
        let plan = RoutePlan {
            latency: Latency::None,
            error_rate: 0.01,
        };
        let failed = (0..100_000).filter(|&n| plan.fails(9, n)).count();
        assert!((800..1_200).contains(&failed), "{failed} failures");
        let never = RoutePlan {
            error_rate: 0.0,
            ..plan
        };
        assert!(!(0..1_000).any(|n| never.fails(9, n)));
        let always = RoutePlan {
            error_rate: 1.0,
            ..plan
        };
        assert!((0..1_000).all(|n| always.fails(9, n)));
    }
}
