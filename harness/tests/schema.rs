//! The scenario schema and reference, checked from outside: the committed `scenarios/scenario.schema.json` and
//! `scenarios/README.md` are what the binary generates now; an independent JSON Schema validator (the `jsonschema`
//! crate, not schemars) accepts every shipped scenario and refuses the invalid files the schema can describe, which
//! the parser refuses too; `explain` answers for every step, with a shipped example.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn svcbench(args: &[&str]) -> (bool, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_svcbench")).args(args).current_dir(root()).output().expect("run svcbench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn committed_schema() -> Value {
    let text = std::fs::read_to_string(root().join("scenarios/scenario.schema.json")).expect("read committed schema");
    serde_json::from_str(&text).expect("committed schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&committed_schema()).expect("the schema is a valid draft 2020-12 schema")
}

fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("YAML")
}

#[test]
fn committed_schema_and_reference_are_what_the_code_generates() {
    let (ok, schema, err) = svcbench(&["schema"]);
    assert!(ok, "{err}");
    let generated: Value = serde_json::from_str(&schema).expect("schema output is JSON");
    assert!(
        generated == committed_schema(),
        "scenarios/scenario.schema.json is stale: run `svcbench schema > scenarios/scenario.schema.json`"
    );
    let (ok, reference, err) = svcbench(&["explain", "--markdown"]);
    assert!(ok, "{err}");
    let committed = std::fs::read_to_string(root().join("scenarios/README.md")).expect("read scenarios/README.md");
    assert!(
        reference == committed,
        "scenarios/README.md is stale: run `svcbench explain --markdown > scenarios/README.md`"
    );
}

#[test]
fn every_shipped_scenario_is_valid_under_the_schema_and_names_it() {
    let validator = validator();
    let mut checked = 0;
    for file in svcbench::scenario::discover(&root().join("scenarios")).expect("scenarios dir") {
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            text.starts_with("# yaml-language-server: $schema=scenario.schema.json\n"),
            "{} lacks the schema modeline",
            file.display()
        );
        let errors: Vec<String> =
            validator.iter_errors(&yaml_to_json(&text)).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} scenarios found");
}

/// Invalid files: what the parser says, and whether a JSON Schema can say it too.
const INVALID: &[(&str, &str, bool)] = &[
    ("  - createDeployment: {namespace: test, name: web, replicaz: 2}", "did you mean `replicas`?", true),
    ("  - expectDnss: {from: test, name: web}", "did you mean `expectDns`?", true),
    ("  - expectDns: {from: test, name: web, resolver: glibcx, rcode: NOERROR}", "unknown resolver `glibcx`", true),
    ("  - expectDns: {from: test, name: web, rcode: [NOERROR, NOPE]}", "NOPE", true),
    ("  - expectDns: {from: test, name: web, rcode: NOERROR, timeout: 10 parsecs}", "timeout `10 parsecs`", true),
    (
        "  - expectConnect: {from: test, namespace: test, service: web, port: 70000, result: connected}",
        "from 0 to 65535",
        true,
    ),
    ("  - expectConnect: {from: test, namespace: test, service: web, port: 80, result: maybe}", "maybe", true),
    ("  - expectConnect: {from: test, namespace: test, service: web, port: 80}", "missing field `result`", true),
    ("  - expectHttp: {from: test, url: \"http://web/\", via: {node: 0, zone: a}}", "unknown field `zone`", true),
    ("  - expectHttp: {from: {namespace: test, nod: 1}, url: \"http://web/\"}", "did you mean `node`?", true),
    ("  - scale: {namespace: test, deployment: web, replicas: -1}", "from 0 to 4294967295", true),
    ("  - createNamespace: {name: other, literl: true}", "did you mean `literal`?", true),
    ("  - expose: {namespace: test, deployment: web, name: w2, port: 80, sessionAffinity: Sticky}", "Sticky", true),
    ("  - expose: {namespace: test, deployment: web, name: w2, port: 80, type: ExternalName}", "ExternalName", true),
    // Beyond what a schema can see: names that must exist, exclusive fields, ranges the validator computes.
    ("  - scale: {namespace: test, deployment: nope, replicas: 1}", "nope", false),
    ("  - expectDns: {from: test, name: web}", "at least one of", false),
    ("  - scale: {namespace: test, deployment: web, replicas: 5000}", "at most 1000", false),
];

#[test]
fn invalid_files_are_refused_by_the_parser_and_where_it_can_say_so_by_the_schema() {
    let validator = validator();
    let dir = tempfile::tempdir().expect("tempdir");
    let head = "name: t\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n  - expose: {namespace: test, deployment: web, port: 80}\n";
    for (i, (step, says, schema_can)) in INVALID.iter().enumerate() {
        let text = format!("{head}{step}\n");
        let path = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&path, &text).expect("write");
        let (ok, _, err) = svcbench(&["validate", path.to_str().expect("utf-8 path")]);
        assert!(!ok, "the parser accepted {step}");
        assert!(err.contains(says) && err.contains(":7:"), "{step}: expected `{says}` at line 7, got {err}");
        let schema_ok = validator.is_valid(&yaml_to_json(&text));
        assert_eq!(!schema_ok, *schema_can, "{step}: schema {}", if schema_ok { "accepted it" } else { "refused it" });
    }
    // And the valid head itself is valid for both.
    assert!(validator.is_valid(&yaml_to_json(head)));
}

#[test]
fn explain_covers_every_step_with_its_fields_and_a_shipped_example() {
    let (ok, list, err) = svcbench(&["explain"]);
    assert!(ok, "{err}");
    let steps: Vec<&str> =
        list.lines().skip(1).take_while(|l| !l.trim().is_empty()).filter_map(|l| l.split_whitespace().next()).collect();
    assert!(steps.len() >= 20 && steps.contains(&"expectUdp") && steps.contains(&"converge"), "{list}");
    for step in steps {
        let (ok, text, err) = svcbench(&["explain", step]);
        assert!(ok, "{step}: {err}");
        assert!(text.starts_with(&format!("STEP: {step}\n")) && text.contains("DESCRIPTION:"), "{text}");
        assert!(text.contains("EXAMPLE (scenarios/"), "{step} has no shipped example: {text}");
    }
    let (ok, text, _) = svcbench(&["explain", "expectUdp.result"]);
    assert!(ok && text.contains("`answered`") && text.contains("`refused`") && text.contains("`timeout`"), "{text}");
    let (ok, _, err) = svcbench(&["explain", "expectUdp.protocl"]);
    assert!(!ok && err.contains("no field `protocl`"), "{err}");
    let (ok, _, err) = svcbench(&["explain", "expectUpd"]);
    assert!(!ok && err.contains("did you mean `expectUdp`?"), "{err}");
    // Into list items and shared types, as a newcomer asks (`expose.ports.targetPort`, `PodSet`).
    let (ok, text, err) = svcbench(&["explain", "expose.ports.targetPort"]);
    assert!(ok && text.contains("integer 0–65535 | string"), "{text}{err}");
    let (ok, text, err) = svcbench(&["explain", "PodSet"]);
    assert!(ok && text.starts_with("TYPE: PodSet") && text.contains("readyPodsOf"), "{text}{err}");
    assert!(list.contains("TYPES") && list.contains("PodSet"), "{list}");
}
