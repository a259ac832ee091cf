//! svcbench: a conformance harness and benchmarker for Kubernetes Services and cluster DNS.
//!
//! Data flows one way: [`scenario`] file → validated [`scenario::Plan`] → [`runner`] → [`target`] → [`probe`] →
//! [`results`] → [`report`]. No module reaches back up; [`cli`] sits on top of them all.

pub mod agent;
pub mod cli;
pub mod lab;
pub mod netexec;
pub mod probe;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod suite;
pub mod targets;
