//! Statistics as pure functions: fairness of a load spread over backends, latency histograms.

pub mod fairness;
pub mod latency;

pub use fairness::Fairness;
