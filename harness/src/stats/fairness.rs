//! Fairness of a spread of requests over backends.
//!
//! Pass/fail is decided by a χ² goodness-of-fit test against the uniform distribution, at a stated α: a fixed
//! threshold on Jain's index means nothing without the sample size, because a perfectly random balancer has
//! E[χ²] = n − 1 and so E[J] ≈ m / (m + n − 1). Jain's index, CV and max/min are reported as the size of the
//! imbalance.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Fairness statistics of per-backend counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fairness {
    /// Number of backends.
    pub backends: usize,
    /// Total requests.
    pub total: u64,
    /// χ² statistic against uniform.
    pub chi_square: f64,
    /// P(χ² ≥ observed) for a uniform random balancer (n − 1 degrees of freedom).
    pub p_value: f64,
    /// Jain's index (Σx)² / (n·Σx²), 1 = perfectly even.
    pub jain: f64,
    /// Jain's index a uniform random balancer is expected to reach at this sample size: m / (m + n − 1).
    pub expected_jain: f64,
    /// Coefficient of variation of the counts.
    pub cv: f64,
    /// Largest count over smallest (infinite when a backend got nothing; `null` in JSON, which has no infinity).
    #[serde(with = "infinite_as_null")]
    #[schemars(with = "Option<f64>")]
    pub max_min_ratio: f64,
    /// Largest share of all requests.
    pub max_share: f64,
}

impl Fairness {
    /// Computes the statistics; `None` with fewer than 2 backends or no requests.
    pub fn of(counts: &[u64]) -> Option<Self> {
        let n = counts.len();
        let total: u64 = counts.iter().sum();
        if n < 2 || total == 0 {
            return None;
        }
        let m = total as f64;
        let nf = n as f64;
        let mean = m / nf;
        let chi_square: f64 = counts.iter().map(|&x| (x as f64 - mean).powi(2) / mean).sum();
        let dist = ChiSquared::new(nf - 1.0).ok()?;
        let p_value = dist.sf(chi_square);
        let sum_sq: f64 = counts.iter().map(|&x| (x as f64).powi(2)).sum();
        let jain = m * m / (nf * sum_sq);
        let variance = counts.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / nf;
        let max = *counts.iter().max()? as f64;
        let min = *counts.iter().min()? as f64;
        Some(Self {
            backends: n,
            total,
            chi_square,
            p_value,
            jain,
            expected_jain: m / (m + nf - 1.0),
            cv: variance.sqrt() / mean,
            max_min_ratio: if min == 0.0 { f64::INFINITY } else { max / min },
            max_share: max / m,
        })
    }

    /// Whether the spread is consistent with a uniform random balancer at significance `alpha`.
    pub fn is_fair(&self, alpha: f64) -> bool {
        self.p_value >= alpha
    }
}

/// JSON has no infinity: write it as `null` and read `null` back as infinity.
mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_spread_is_fair() {
        let f = Fairness::of(&[250, 250, 250, 250]).unwrap();
        assert_eq!(f.chi_square, 0.0);
        assert!((f.p_value - 1.0).abs() < 1e-12);
        assert!((f.jain - 1.0).abs() < 1e-12);
        assert_eq!(f.max_min_ratio, 1.0);
    }

    #[test]
    fn skew_is_unfair_and_identities_hold() {
        let counts = [900, 100];
        let f = Fairness::of(&counts).unwrap();
        // χ² = 2 * 400² / 500 = 640; J = m / (m + χ²).
        assert!((f.chi_square - 640.0).abs() < 1e-9);
        assert!((f.jain - 1000.0 / (1000.0 + 640.0)).abs() < 1e-12);
        assert!((f.jain - 1.0 / (1.0 + f.cv * f.cv)).abs() < 1e-12);
        assert!(!f.is_fair(0.001));
        assert!((f.max_min_ratio - 9.0).abs() < 1e-12);
    }

    #[test]
    fn chi_square_p_value_matches_tables() {
        // χ²(1) = 3.841 at p = 0.05; χ²(4) = 18.467 at p = 0.001.
        let f = Fairness::of(&[1, 1]).unwrap();
        let d = ChiSquared::new(1.0).unwrap();
        assert!((d.sf(3.841) - 0.05).abs() < 1e-3);
        assert!((ChiSquared::new(4.0).unwrap().sf(18.467) - 0.001).abs() < 1e-4);
        assert!(f.p_value > 0.99);
    }

    #[test]
    fn infinite_ratio_round_trips_through_json() {
        let f = Fairness::of(&[3, 0]).unwrap();
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains("\"max_min_ratio\":null"), "{json}");
        let back: Fairness = serde_json::from_str(&json).unwrap();
        assert_eq!(back.max_min_ratio, f64::INFINITY);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(Fairness::of(&[5]).is_none());
        assert!(Fairness::of(&[0, 0]).is_none());
        assert_eq!(Fairness::of(&[3, 0]).unwrap().max_min_ratio, f64::INFINITY);
    }
}
