//! Pod sets resolved against a target: "the ready pods of nginx" as the target shows them now.
//!
//! A set of a workload is known only once the workload has as many live pods (not terminating, with an IP) as the
//! scenario gave it at that step: on a real cluster the ReplicaSet creates pods after the API accepted the
//! Deployment, and until then "the ready pods of nginx" is empty — which would match an empty endpoint list and let
//! a check pass vacuously. Until the pods exist the set is [`Unsettled`](PodSetState::Unsettled) and the check
//! does not hold (it is polled again).

use std::{collections::BTreeSet, net::IpAddr};

use crate::{
    scenario::{IpFamily, ObjectRef, PodRef, PodSet},
    targets::{PodView, Target, TargetError},
};

/// A pod set as the target shows it now.
pub(crate) type Resolved<T> = Result<T, String>;

/// The live pods of `deployment`, or why the set is not known yet (fewer or more live pods than `replicas`).
async fn live(
    target: &dyn Target,
    deployment: &ObjectRef,
    replicas: u32,
) -> Result<Resolved<Vec<PodView>>, TargetError> {
    let pods: Vec<PodView> = target.pods(deployment).await?.into_iter().filter(|p| !p.terminating).collect();
    if pods.len() != replicas as usize {
        return Ok(Err(format!(
            "{deployment} has {} live pods with an IP, not yet its {replicas} replicas",
            pods.len()
        )));
    }
    Ok(Ok(pods))
}

/// The pods a set means, as the target shows them now; `Ok(Err(why))` while the workload's pods are not all there.
pub(crate) async fn pods_in(target: &dyn Target, set: &PodSet) -> Result<Resolved<Vec<PodView>>, TargetError> {
    Ok(Ok(match set {
        PodSet::Empty => Vec::new(),
        PodSet::ReadyPodsOf { deployment, replicas } => match live(target, deployment, *replicas).await? {
            Ok(pods) => pods.into_iter().filter(|p| p.ready).collect(),
            Err(why) => return Ok(Err(why)),
        },
        PodSet::PodsOf { deployment, replicas } => match live(target, deployment, *replicas).await? {
            Ok(pods) => pods,
            Err(why) => return Ok(Err(why)),
        },
        PodSet::TerminatingPodsOf { deployment } => {
            target.pods(deployment).await?.into_iter().filter(|p| p.terminating).collect()
        }
        PodSet::OnNode { set, node } => {
            let name = target.node(*node).await?.name;
            match Box::pin(pods_in(target, set)).await? {
                Ok(pods) => pods.into_iter().filter(|p| p.node.as_deref() == Some(name.as_str())).collect(),
                Err(why) => return Ok(Err(why)),
            }
        }
    }))
}

/// Pod IPs of a pod set: each pod's address of `family`, or its primary one (`None`).
pub(crate) async fn pod_ips(
    target: &dyn Target,
    set: &PodSet,
    family: Option<IpFamily>,
) -> Result<Resolved<BTreeSet<IpAddr>>, TargetError> {
    let pods = match pods_in(target, set).await? {
        Ok(pods) => pods,
        Err(why) => return Ok(Err(why)),
    };
    let mut ips = BTreeSet::new();
    for pod in pods {
        match family {
            None => {
                ips.insert(pod.ip);
            }
            Some(family) => match pod.ip_of(family) {
                Some(ip) => {
                    ips.insert(ip);
                }
                None => return Ok(Err(format!("pod {} has no {family} address", pod.name))),
            },
        }
    }
    Ok(Ok(ips))
}

/// Pod names of a pod set.
pub(crate) async fn pod_names(target: &dyn Target, set: &PodSet) -> Result<Resolved<BTreeSet<String>>, TargetError> {
    Ok(pods_in(target, set).await?.map(|pods| pods.into_iter().map(|p| p.name).collect()))
}

/// One pod's address (of `family`, or its primary one), by creation index among the live pods (the order `setPodReady`
/// uses); `None` when there is no such pod.
pub(crate) async fn pod_ip(
    target: &dyn Target,
    pod: &PodRef,
    family: Option<IpFamily>,
) -> Result<Option<Vec<IpAddr>>, TargetError> {
    let pods: Vec<PodView> = target.pods(&pod.deployment).await?.into_iter().filter(|p| !p.terminating).collect();
    Ok(pods.get(pod.index as usize).map(|p| match family {
        Some(family) => p.ip_of(family).into_iter().collect(),
        None => vec![p.ip],
    }))
}
