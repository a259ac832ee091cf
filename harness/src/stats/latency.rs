//! Latency histograms: HdrHistogram in microseconds, summarised for results and serialized for merging.

use base64::{Engine, engine::general_purpose::STANDARD};
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2DeflateSerializer},
};

use serde::{Deserialize, Serialize};

/// A latency distribution: summary numbers, the percentile curve to plot, and the full histogram to merge.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Minimum, µs.
    pub min_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Maximum, µs.
    pub max_us: f64,
    /// The percentile distribution (HdrHistogram's `iter_quantiles`), for plotting: quantile in [0, 1], value µs.
    pub percentiles: Vec<PercentilePoint>,
    /// The histogram itself, V2+DEFLATE serialized, base64: mergeable across runs and processes.
    pub histogram: String,
}

/// One point of a percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PercentilePoint {
    /// Quantile in [0, 1].
    pub quantile: f64,
    /// Latency at that quantile, µs.
    pub value_us: f64,
}

/// Highest latency a histogram tracks: one minute, in µs (values above are clamped to it).
pub const MAX_US: u64 = 60_000_000;

/// A histogram for latencies in µs with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid")
}

/// Records a latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, latency: std::time::Duration) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_US).clamp(1, MAX_US);
    h.saturating_record(us);
}

/// Summary numbers, the percentile curve (HdrHistogram's `iter_quantiles` with 5 ticks per half distance, like its
/// percentile-distribution output) and the serialized histogram.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    let mut percentiles = Vec::new();
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let point = PercentilePoint { quantile: v.quantile_iterated_to(), value_us: v.value_iterated_to() as f64 };
            if percentiles.last() != Some(&point) {
                percentiles.push(point);
            }
        }
    }
    let q = |q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 };
    LatencySummary {
        count: h.len(),
        min_us: if h.is_empty() { 0.0 } else { h.min() as f64 },
        mean_us: if h.is_empty() { 0.0 } else { h.mean() },
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: if h.is_empty() { 0.0 } else { h.max() as f64 },
        percentiles,
        histogram: serialize(h),
    }
}

/// V2+DEFLATE, base64: the form `LatencySummary::histogram` carries.
pub fn serialize(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// The inverse of [`serialize`].
///
/// # Errors
/// Not base64, or not a serialized histogram.
pub fn deserialize(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD.decode(text).map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| format!("bad histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn summary_round_trips_and_merges() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for i in 1..=1000u64 {
            record(&mut a, Duration::from_micros(i));
            record(&mut b, Duration::from_micros(i * 10));
        }
        let s = summarize(&a);
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() <= 1.0);
        assert!((s.p99_us - 990.0).abs() <= 1.0);
        assert!(s.percentiles.windows(2).all(|w| w[0].quantile <= w[1].quantile && w[0].value_us <= w[1].value_us));
        assert_eq!(s.percentiles.last().unwrap().quantile, 1.0);
        let mut merged = deserialize(&s.histogram).unwrap();
        merged.add(deserialize(&summarize(&b).histogram).unwrap()).unwrap();
        assert_eq!(merged.len(), 2000);
        assert_eq!(merged.max(), b.max());
        assert!(deserialize("not base64!").is_err());
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut h = new_histogram();
        record(&mut h, Duration::from_secs(3600));
        record(&mut h, Duration::ZERO);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_US - MAX_US / 1000);
    }
}
