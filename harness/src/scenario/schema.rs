//! The JSON Schema of the scenario file, generated from the serde types the parser reads ([`super::file`]).
//!
//! The types derive `JsonSchema`, so the schema follows the parser; this module owns what the Rust shape alone cannot
//! say: the spellings the validator accepts for string fields (durations, named choices), and the schema's identity.
//! Rules that span fields (exactly one of, known names, capacity) stay the validator's: a schema cannot see them.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};

use super::file::ScenarioFile;

/// The schema of `scenarios/*.yaml`, draft 2020-12.
pub fn scenario_schema() -> serde_json::Value {
    schema_of::<ScenarioFile>("svcbench scenario")
}

/// The draft 2020-12 schema of any type svcbench reads or writes (scenario, `results.json`, state file).
pub fn schema_of<T: JsonSchema>(title: &str) -> serde_json::Value {
    let mut schema = SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>();
    schema.insert("title".into(), title.into());
    schema.to_value()
}

/// Closes an object schema to unknown keys, as the hand-written parsers of the short forms do (schemars' own
/// `deny_unknown_fields` does not apply to one variant).
pub fn deny_unknown_fields(schema: &mut Schema) {
    schema.insert("additionalProperties".into(), false.into());
}

/// A duration as the validator reads it (`humantime`): `10s`, `500ms`, `1m30s`; 1 ms to 1 h.
pub struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit, repeated (`10s`, `500ms`, `1m30s`), from 1ms to 1h.",
            "pattern": "^\\s*([0-9]+\\s*(ns|nsec|us|usec|µs|ms|msec|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours)\\s*)+$",
            "examples": ["10s", "500ms", "2m"]
        })
    }
}

/// `[]`: no addresses at all.
pub struct EmptyList;

impl JsonSchema for EmptyList {
    fn schema_name() -> Cow<'static, str> {
        "EmptyList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "array", "maxItems": 0, "description": "`[]`: none." })
    }
}

/// `measureHttp.mode`.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)] // schema only
pub enum HttpModeName {
    /// A new TCP connection per request (every request is load-balanced).
    NewConnection,
    /// `connections` kept-alive connections, each reused.
    KeepAlive,
}

/// `expose.sessionAffinity`.
#[derive(JsonSchema)]
#[allow(dead_code)] // schema only
pub enum SessionAffinityName {
    /// No affinity: every connection is balanced on its own.
    None,
    /// A client's connections go to the same endpoint for `sessionAffinityTimeoutSeconds`.
    ClientIP,
}

/// `expose.trafficDistribution`.
#[derive(JsonSchema)]
#[allow(dead_code)] // schema only
pub enum TrafficDistributionName {
    /// Prefer endpoints in the client's zone.
    PreferClose,
}

/// `expose.clusterIP`: only `None` may be written (headless); otherwise one is allocated.
#[derive(JsonSchema)]
#[allow(dead_code)] // schema only
pub enum HeadlessName {
    /// A headless Service: no ClusterIP, DNS answers with the endpoints.
    None,
}

/// `expectService.clusterIP`.
#[derive(JsonSchema)]
#[allow(dead_code)] // schema only
pub enum ExpectedClusterIp {
    /// An address from the service range.
    #[serde(rename = "allocated")]
    Allocated,
    /// Headless.
    None,
}

/// `via:` as a word.
#[derive(JsonSchema)]
#[allow(dead_code)] // schema only
pub enum ViaName {
    /// The url's host goes through the pod's resolver (the default).
    #[serde(rename = "dns")]
    Dns,
    /// Dial the Service's ClusterIP directly.
    #[serde(rename = "clusterIP")]
    ClusterIp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_draft_2020_12_and_names_every_step() {
        let schema = scenario_schema();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let text = schema.to_string();
        for step in ["createNamespace", "expectDns", "expectUdp", "measureHttp", "converge"] {
            assert!(text.contains(&format!("\"{step}\"")), "{step} missing");
        }
    }
}
