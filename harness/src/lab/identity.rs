//! The harness's least-privilege identity on a lab: `harness/rbac.yaml` — the very file users apply — applied with
//! the lab's admin credentials, a token minted for its ServiceAccount (TokenRequest), and a kubeconfig that speaks
//! as it. The kube target run with it exercises the ClusterRole and the ValidatingAdmissionPolicy on a real API
//! server instead of trusting what the file claims.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kube::{
    Api, Client,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery::{self, Scope},
};

/// The role and policy users apply (`kubectl apply -f harness/rbac.yaml`).
pub const RBAC_YAML: &str = include_str!("../../rbac.yaml");
/// The ServiceAccount the file grants: namespace and name.
pub const HARNESS_ACCOUNT: (&str, &str) = ("svcbench-system", "svcbench");
/// How long a minted token lives: longer than any battery.
const TOKEN_SECONDS: u32 = 3 * 3600;

/// Applies every object of [`RBAC_YAML`] with server-side apply.
///
/// # Errors
/// The file does not parse, or the API server refuses an object.
pub async fn apply_rbac(admin: &Client) -> anyhow::Result<()> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(RBAC_YAML).context("harness/rbac.yaml is not YAML")?;
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let object: DynamicObject = serde_json::from_value(doc).context("an object of harness/rbac.yaml")?;
        let types = object.types.clone().context("an object without apiVersion/kind")?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), types.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
        let (resource, caps) = discovery::pinned_kind(admin, &gvk).await.with_context(|| format!("{gvk:?}"))?;
        let name = object.metadata.name.clone().context("an object without a name")?;
        let api: Api<DynamicObject> = match (caps.scope, object.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(admin.clone(), ns, &resource),
            (Scope::Namespaced, None) => bail!("{} {name} has no namespace", types.kind),
            (Scope::Cluster, _) => Api::all_with(admin.clone(), &resource),
        };
        api.patch(&name, &PatchParams::apply("svcbench-lab").force(), &Patch::Apply(&object))
            .await
            .with_context(|| format!("apply {} {name}", types.kind))?;
    }
    Ok(())
}

/// Applies the role, mints a token for its ServiceAccount and writes a kubeconfig for it beside the admin one
/// (`harness.kubeconfig`, mode 0600); returns its path.
///
/// # Errors
/// Applying, the TokenRequest or writing the file fails.
pub async fn harness_kubeconfig(admin: &Client, admin_kubeconfig: &Path) -> anyhow::Result<PathBuf> {
    apply_rbac(admin).await?;
    let (ns, name) = HARNESS_ACCOUNT;
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": TOKEN_SECONDS},
    });
    let request = http::Request::post(format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)?;
    let answer: serde_json::Value = admin.request(request).await.context("TokenRequest for the harness")?;
    let token = answer["status"]["token"].as_str().context("TokenRequest answered no token")?;
    let text =
        std::fs::read_to_string(admin_kubeconfig).with_context(|| format!("read {}", admin_kubeconfig.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(&text).context("the lab's kubeconfig is JSON")?;
    // Same cluster and CA; the user is the ServiceAccount, by its token alone.
    config["users"][0]["user"] = serde_json::json!({ "token": token });
    let path = admin_kubeconfig.with_file_name("harness.kubeconfig");
    write_private(&path, serde_json::to_string_pretty(&config)?.as_bytes())?;
    Ok(path)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rbac_file_parses_into_the_objects_it_describes() {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(RBAC_YAML).unwrap();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding"
            ]
        );
    }
}
