//! The scenario file's node-aware parts as written: `from:` clients, `via:` paths and `expectHealthCheck`.
//!
//! Each accepts a short form (a string) and a map, deserialized by hand so that unknown keys are named.

use serde::{Deserialize, de};

use super::file::{RawPodIndex, SpannedStr};

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
#[derive(Debug)]
pub enum RawVia {
    /// `via: clusterIP` (or `dns`, the default).
    Named(String),
    /// `via: {node: N}`.
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNodeVia {
    /// Node index.
    pub node: u32,
}

/// `expectHealthCheck`: the answer of kube-proxy's health check node port on one node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectHealthCheck {
    /// The client.
    pub from: serde_saphyr::Spanned<RawClient>,
    /// The Service's namespace.
    pub namespace: SpannedStr,
    /// A `LoadBalancer` Service with `externalTrafficPolicy: Local`.
    pub service: SpannedStr,
    /// Node index.
    pub node: serde_saphyr::Spanned<u32>,
    /// 200 (the node has local endpoints) or 503 (it has none).
    pub status: serde_saphyr::Spanned<u16>,
    /// The `localEndpoints` count the answer reports.
    #[serde(default)]
    pub local_endpoints: Option<u32>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}
