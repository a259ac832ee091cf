//! The README's examples run: its first lines still give the two set-up commands, its first scenario passes on the
//! embedded target exactly as printed (and its results match `svcbench schema --results`), and every `svcbench
//! explain …` / `svcbench schema` it shows answers. The lab and kube commands it shows need root, a lab install or a
//! cluster: the `lab-*` trials of `cargo test` run those paths.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("read README.md")
}

/// The body of the first fenced block of this language.
fn first_block(text: &str, language: &str) -> String {
    let open = format!("```{language}\n");
    let start = text.find(&open).unwrap_or_else(|| panic!("no ```{language} block")) + open.len();
    let len = text[start..].find("```").expect("unclosed block");
    text[start..start + len].to_owned()
}

fn svcbench(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_svcbench")).args(args).current_dir(dir).output().expect("run svcbench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_first_lines_give_the_two_commands() {
    let text = readme();
    assert!(text.starts_with("# svcbench\n\n```sh\n"), "the README opens with the commands");
    let commands = first_block(&text, "sh");
    assert!(commands.contains("cargo run --release -p svcbench -- run "), "{commands}");
    assert!(commands.contains("cargo test --workspace "), "{commands}");
    assert!(text.contains("cargo run -p svcbench -- lab install"), "the lab's install is the documented third step");
    assert!(text.lines().count() < 200, "the README stays a first read: {} lines", text.lines().count());
}

#[test]
fn the_first_scenario_passes_as_printed_and_its_results_match_their_schema() {
    let text = readme();
    let scenario = first_block(&text, "yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("my-first-scenario.yaml"), &scenario).expect("write");
    let reports = dir.path().join("reports");
    let (ok, stdout, stderr) = svcbench(
        dir.path(),
        &["run", "my-first-scenario.yaml", "--reports-dir", reports.to_str().expect("utf-8 path")],
    );
    assert!(ok, "the README's scenario failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("PASS") && stdout.contains("my-first-scenario"), "{stdout}");
    for promised in ["results.json", "index.html", "junit.xml"] {
        assert!(stdout.contains(promised), "the README promises {promised}: {stdout}");
    }
    let run_dir = std::fs::read_dir(&reports).expect("reports").next().expect("a run folder").expect("entry").path();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).expect("results")).expect("JSON");
    let (ok, schema, err) = svcbench(dir.path(), &["schema", "--results"]);
    assert!(ok, "{err}");
    let schema: Value = serde_json::from_str(&schema).expect("schema JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("valid schema");
    let errors: Vec<String> =
        validator.iter_errors(&results).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // Its modeline points at the committed schema from the repository root, and that schema accepts it.
    let modeline = "# yaml-language-server: $schema=scenarios/scenario.schema.json\n";
    assert!(scenario.starts_with(modeline), "{scenario}");
    let scenario_schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("scenarios/scenario.schema.json")).expect("schema"))
            .expect("JSON");
    let instance: Value = serde_saphyr::from_str(&scenario).expect("YAML");
    assert!(jsonschema::draft202012::new(&scenario_schema).expect("valid").is_valid(&instance));
    // The screenshot it shows is there.
    assert!(root().join("harness/doc/images/first-scenario-report.png").is_file());
}

#[test]
fn every_explain_and_schema_command_it_shows_answers() {
    let text = readme();
    let mut shown = 0;
    for (i, _) in text.match_indices("`svcbench ") {
        let command = &text[i + 1..i + 1 + text[i + 1..].find('`').expect("closing backtick")];
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        // Placeholders (`STEP[.FIELD]`, `FILE...`) are syntax, not examples.
        if !matches!(args.first(), Some(&"explain" | &"schema"))
            || args.iter().any(|a| a.chars().any(|c| c.is_ascii_uppercase() && a.to_uppercase() == *a))
        {
            continue;
        }
        let (ok, stdout, stderr) = svcbench(&root(), &args);
        assert!(ok && !stdout.is_empty(), "`{command}` failed: {stderr}");
        shown += 1;
    }
    assert!(shown >= 3, "the README shows explain and schema ({shown} found)");
}
