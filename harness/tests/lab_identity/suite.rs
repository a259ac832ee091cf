//! The whole shipped suite as the harness's least-privilege identity: every scenario passes (or fails only as the
//! lab's measured profile expects), except those that put an agent in the cluster's own namespaces, which the role
//! confines out — they must come out "not run" at exactly that step, with the API server's denial.

use std::path::Path;

use async_trait::async_trait;
use svcbench::{
    lab::Lab,
    report::profile::{self, Profile, Verdict},
    results::Outcome,
    scenario::{self, CLUSTER_NAMESPACES, Plan},
    suite::battery::{self, BatteryOptions, DEFAULT_CLUSTER_JOBS, TargetSource},
    targets::{
        Target, TargetError,
        kube::{KubeConfig, KubeTarget},
    },
};

/// New namespaces per scenario, as the harness's identity.
struct AsHarness(kube::Client);

#[async_trait]
impl TargetSource for AsHarness {
    fn name(&self) -> String {
        "kube (harness identity)".into()
    }

    async fn start(&self) -> Result<Box<dyn Target>, TargetError> {
        let run = svcbench::targets::embedded::names::random(6);
        Ok(Box::new(KubeTarget::with_client(self.0.clone(), KubeConfig::from_env(), &run)))
    }
}

/// Whether the plan puts an agent in `default` or `kube-system` (the scheduler's own reading of the plan).
fn needs_cluster_namespace(plan: &Plan) -> Option<&'static str> {
    let holds = scenario::isolation(plan).holds;
    CLUSTER_NAMESPACES.into_iter().find(|ns| holds.contains(&format!("agent in namespace {ns}")))
}

/// Runs every shipped scenario as `harness` on `lab`, judged by the lab's profile; panics listing every scenario
/// that did not come out as the role allows.
pub async fn whole_suite(lab: &Lab, harness: kube::Client) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let plans: Vec<Plan> = scenario::discover(&dir)
        .expect("scenarios/")
        .iter()
        .map(|f| scenario::load(f).expect("a shipped scenario is valid"))
        .collect();
    let profile = lab
        .config()
        .profile_files()
        .iter()
        .map(|f| dir.join("profiles").join(f))
        .find(|p| p.exists())
        .map(|p| Profile::load(&p).expect("the lab's profile"));
    let options = BatteryOptions { jobs: DEFAULT_CLUSTER_JOBS, ..BatteryOptions::default() };
    let started = std::time::Instant::now();
    let run = battery::run_battery(&plans, &AsHarness(harness), options, &mut |_| {}, std::future::pending())
        .await
        .expect("the battery ran");
    let mut wrong = Vec::new();
    let (mut passed, mut expected, mut not_run) = (0, 0, 0);
    for (plan, result) in plans.iter().zip(&run.scenarios) {
        match needs_cluster_namespace(plan) {
            Some(ns) => {
                // Every step before the denied one ran and held; the denied one names the namespace and the policy.
                let denied = result.steps.iter().find(|s| s.outcome != Outcome::Passed);
                let ok = result.outcome == Outcome::Skipped
                    && denied.is_some_and(|s| {
                        let m = s.message.as_deref().unwrap_or_default();
                        s.outcome == Outcome::Skipped
                            && m.starts_with("not run")
                            && m.contains(ns)
                            && m.contains("svcbench-own-namespaces")
                    });
                if ok {
                    not_run += 1;
                    let s = denied.expect("checked");
                    println!(
                        "{}: not run from line {} ({ns}): {}",
                        plan.name,
                        s.line,
                        s.message.as_deref().unwrap_or_default()
                    );
                } else {
                    wrong.push(format!(
                        "{}: puts an agent in {ns}, so it must stop there as not permitted; came out {:?}: {:?}",
                        plan.name,
                        result.outcome,
                        result.first_failure()
                    ));
                }
            }
            None => match profile::verdict(result, profile.as_ref()) {
                Verdict::Passed => passed += 1,
                Verdict::ExpectedFail => expected += 1,
                other => {
                    let first = result.steps.iter().find(|s| s.outcome != Outcome::Passed);
                    let (line, message) = first.map_or((0, ""), |s| (s.line, s.message.as_deref().unwrap_or_default()));
                    wrong.push(format!("{}: {other:?} at line {line}: {message}", plan.name));
                }
            },
        }
    }
    println!(
        "the suite as system:serviceaccount:svcbench-system:svcbench: {passed} passed, {expected} expected failures \
         (profile), {not_run} not run (they need the cluster's own namespaces); {} scenarios in {:.1} s",
        plans.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(wrong.is_empty(), "as the harness identity:\n{}", wrong.join("\n"));
    assert!(not_run >= 1, "no shipped scenario reaches into a cluster namespace any more: this check tests nothing");
}
