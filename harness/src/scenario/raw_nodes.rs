//! The scenario file's node-aware parts as written: `from:` clients, `via:` paths and `expectHealthCheck`.
//!
//! Each accepts a short form (a string) and a map, deserialized by hand so that unknown keys are named.

use schemars::JsonSchema;
use serde::{Deserialize, de};

use super::schema::{DurationText, ViaName};

use super::{file::SpannedStr, raw_checks::RawPodIndex};

/// `from:` — a namespace, or `{namespace, node}`, `{node}`, `{pod: {deployment, index}}`.
#[derive(Debug, Default)]
pub struct RawClient {
    /// The namespace (alone, or with `node`).
    pub namespace: Option<String>,
    /// A node index.
    pub node: Option<u32>,
    /// A backend pod.
    pub pod: Option<RawPodIndex>,
}

/// The forms `from:` takes, for the schema (the parser reads them by hand, above).
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)] // schema only
enum ClientForm {
    /// A pod in this namespace.
    Namespace(String),
    /// A pod in `namespace` on node `node`; `{node: N}` alone: node N's host network; `pod`: that backend pod.
    #[schemars(transform = super::schema::deny_unknown_fields)]
    Map {
        /// The namespace (alone, or with `node`).
        namespace: Option<String>,
        /// A node index.
        node: Option<u32>,
        /// A backend pod.
        pod: Option<RawPodIndex>,
    },
}

impl JsonSchema for RawClient {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Client".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ClientForm::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for RawClient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = RawClient;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a namespace name, `{namespace: NS, node: N}`, `{node: N}` or `{pod: {deployment: D, index: I}}`",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawClient, E> {
                Ok(RawClient { namespace: Some(v.to_owned()), ..RawClient::default() })
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawClient, A::Error> {
                let mut out = RawClient::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "namespace" if out.namespace.is_some() => return Err(de::Error::duplicate_field("namespace")),
                        "namespace" => out.namespace = Some(map.next_value()?),
                        "node" if out.node.is_some() => return Err(de::Error::duplicate_field("node")),
                        "node" => out.node = Some(map.next_value()?),
                        "pod" if out.pod.is_some() => return Err(de::Error::duplicate_field("pod")),
                        "pod" => out.pod = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["namespace", "node", "pod"])),
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `via:` — `clusterIP`, or `{node: N}` for the Service port's nodePort on node N.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub enum RawVia {
    /// `via: clusterIP` (or `dns`, the default).
    Named(#[schemars(with = "ViaName")] String),
    /// `via: {node: N}`.
    #[schemars(transform = super::schema::deny_unknown_fields)]
    NodePort {
        /// Node index.
        node: u32,
    },
}

impl<'de> Deserialize<'de> for RawVia {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = RawVia;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`dns`, `clusterIP` or `{node: N}` (the nodePort on node N)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawVia, E> {
                Ok(RawVia::Named(v.to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawVia, A::Error> {
                let mut node = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "node" if node.is_some() => return Err(de::Error::duplicate_field("node")),
                        "node" => node = Some(map.next_value::<u32>()?),
                        other => return Err(de::Error::unknown_field(other, &["node"])),
                    }
                }
                Ok(RawVia::NodePort { node: node.ok_or_else(|| de::Error::missing_field("node"))? })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `via: {node: N}` on `expectConnect`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNodeVia {
    /// Node index.
    pub node: u32,
}

/// `expectHealthCheck`: the answer of kube-proxy's health check node port on one node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectHealthCheck {
    /// The client.
    #[schemars(with = "RawClient")]
    pub from: serde_saphyr::Spanned<RawClient>,
    /// The Service's namespace.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// A `LoadBalancer` Service with `externalTrafficPolicy: Local`.
    #[schemars(with = "String")]
    pub service: SpannedStr,
    /// Node index.
    #[schemars(with = "u32")]
    pub node: serde_saphyr::Spanned<u32>,
    /// 200 (the node has local endpoints) or 503 (it has none).
    #[schemars(with = "u16")]
    pub status: serde_saphyr::Spanned<u16>,
    /// The `localEndpoints` count the answer reports.
    #[serde(default)]
    pub local_endpoints: Option<u32>,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}
