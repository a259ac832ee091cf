//! Statistics as pure functions: fairness of a load spread over backends.

pub mod fairness;

pub use fairness::Fairness;
