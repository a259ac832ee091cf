//! Reporters: consumers of runner events and results.
//!
//! - [`console`] prints a PASS/FAIL line per scenario (XFAIL/XPASS under a profile); [`progress`] draws the live
//!   "scenario k of n, step" line on a terminal.
//! - [`json`] writes and reads `results.json`, the versioned document everything else is rendered from.
//! - [`compare`] lines up one or more runs as labelled columns; [`html`] renders them as one self-contained page and
//!   [`junit`] as JUnit XML; [`files`] puts a run folder's files on disk and reads them back.
//! - [`differences`] finds the steps where implementations observed different things (both renderers use it).
//! - [`profile`] reads expected-failure profiles and turns outcomes into verdicts.

pub mod compare;
pub mod console;
pub mod differences;
pub mod files;
pub mod html;
pub mod json;
pub mod junit;
pub mod profile;
pub mod progress;
