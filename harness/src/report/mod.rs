//! Reporters: consumers of runner events and results. The console prints progress lines; [`json`] writes the
//! results document.

pub mod console;
pub mod json;
pub mod profile;
