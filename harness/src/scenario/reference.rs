//! What a scenario author reads about each step and field (`svcbench explain`, `scenarios/README.md`): descriptions,
//! types and allowed values taken from the schema ([`super::schema`], itself derived from the parser's types), and
//! examples taken from the shipped scenarios, so neither can drift from what the parser accepts.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::{
    schema::scenario_schema,
    validate::source::{read_source, yaml_options},
};

/// A step as written in a shipped scenario.
#[derive(Debug, Clone)]
pub struct Example {
    /// The file, as given to [`Reference::new`]'s directory joined with its name.
    pub file: PathBuf,
    /// 1-based line of the step.
    pub line: u64,
    /// The step's YAML, as written (a list item).
    pub text: String,
    /// The step's fields, parsed (to find an example that uses a given field).
    pub value: Value,
}

/// The schema plus the examples found in a directory of scenarios.
pub struct Reference {
    schema: Value,
    examples: BTreeMap<String, Vec<Example>>,
}

/// Why `explain` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// No step has this name.
    #[error("no step `{0}`{1} (`svcbench explain` lists them)")]
    UnknownStep(String, String),
    /// The step (or field) has no field of this name.
    #[error("`{0}` has no field `{1}`{2}")]
    UnknownField(String, String, String),
}

/// Only the steps, each as a map of one key; the rest of the file is the parser's business.
#[derive(Deserialize)]
struct StepsOnly {
    #[serde(default)]
    steps: Vec<Spanned<BTreeMap<String, Value>>>,
}

impl Reference {
    /// The schema, with examples from the `*.yaml` files of `dir` (none when it cannot be read; a file that does not
    /// parse gives none either: `svcbench validate` is where its errors are told).
    pub fn new(dir: &Path) -> Self {
        let mut examples: BTreeMap<String, Vec<Example>> = BTreeMap::new();
        for file in super::discover(dir).unwrap_or_default() {
            let Ok(text) = read_source(&file) else { continue };
            let Ok(parsed) = serde_saphyr::from_str_with_options::<StepsOnly>(&text, yaml_options()) else { continue };
            let lines: Vec<&str> = text.lines().collect();
            let starts: Vec<u64> = parsed.steps.iter().map(|s| s.referenced.line()).collect();
            for (i, step) in parsed.steps.into_iter().enumerate() {
                let Some((name, value)) = step.value.into_iter().next() else { continue };
                let end = starts.get(i + 1).map_or(lines.len(), |next| (*next as usize).saturating_sub(1));
                let text = step_text(&lines, starts[i] as usize, end);
                examples.entry(name).or_default().push(Example { file: file.clone(), line: starts[i], text, value });
            }
        }
        Reference { schema: scenario_schema(), examples }
    }

    /// Every step: its name and one-line description, in the order the schema gives them.
    pub fn steps(&self) -> Vec<(String, String)> {
        let variants = self.schema["$defs"]["RawStep"]["oneOf"].as_array().cloned().unwrap_or_default();
        variants
            .iter()
            .filter_map(|v| {
                let name = v["properties"].as_object()?.keys().next()?.clone();
                Some((name, v["description"].as_str().unwrap_or_default().to_owned()))
            })
            .collect()
    }

    /// `svcbench explain [step[.field[.field…]]]`, as text.
    ///
    /// # Errors
    /// An unknown step or field, with the nearest known name when one is close.
    pub fn explain(&self, path: Option<&str>) -> Result<String, ExplainError> {
        let Some(path) = path.filter(|p| !p.is_empty()) else { return Ok(self.step_list()) };
        let mut parts = path.split('.');
        let step = parts.next().unwrap_or_default();
        let steps = self.steps();
        // A step, or a shared type by the name the reference gives it (`PodSet`, `ServicePort`).
        let (mut schema, mut description) = match steps.iter().find(|(n, _)| n == step) {
            Some((_, description)) => (self.step_schema(step), description.clone()),
            None => match self.type_named(step) {
                Some(def) => (
                    reference_to(&def),
                    self.schema["$defs"][&def]["description"].as_str().unwrap_or_default().to_owned(),
                ),
                None => {
                    let known = steps.iter().map(|(n, _)| n.clone()).chain(self.type_names());
                    let known: Vec<String> = known.collect();
                    return Err(ExplainError::UnknownStep(
                        step.into(),
                        nearest(step, known.iter().map(String::as_str)),
                    ));
                }
            },
        };
        let mut walked = vec![step.to_owned()];
        for field in parts {
            let fields = self.fields(&schema);
            let Some(f) = fields.iter().find(|f| f.name == field) else {
                let near = nearest(field, fields.iter().map(|f| f.name.as_str()));
                return Err(ExplainError::UnknownField(walked.join("."), field.into(), near));
            };
            description = f.description.clone();
            schema = f.schema.clone();
            walked.push(field.to_owned());
        }
        let mut out = String::new();
        let heading = match (walked.len(), steps.iter().any(|(n, _)| *n == walked[0])) {
            (1, true) => "STEP",
            (1, false) => "TYPE",
            _ => "FIELD",
        };
        let _ = writeln!(out, "{heading}: {}", walked.join("."));
        let _ = writeln!(out, "TYPE: {}\n", self.type_name(&schema));
        let _ = writeln!(out, "DESCRIPTION:\n{}\n", indent(&description, 4));
        let values = self.values(&schema);
        if !values.is_empty() {
            let _ = writeln!(out, "VALUES:");
            for (v, d) in values {
                let _ = writeln!(out, "    {v:<16} {d}");
            }
            let _ = writeln!(out);
        }
        let fields = self.fields(&schema);
        if !fields.is_empty() {
            let _ = writeln!(out, "FIELDS:");
            for f in &fields {
                let required = if f.required { " -required-" } else { "" };
                let _ = writeln!(
                    out,
                    "    {} <{}>{required}\n{}",
                    f.name,
                    self.type_name(&f.schema),
                    indent(&f.description, 8)
                );
            }
            let _ = writeln!(out);
        }
        match self.example(&walked) {
            Some(e) => {
                let _ = writeln!(out, "EXAMPLE ({}:{}):\n{}", e.file.display(), e.line, indent(&e.text, 4));
            }
            None if self.examples.is_empty() => {
                let _ = writeln!(
                    out,
                    "EXAMPLE: no scenarios found to take one from (run from the repository root, or pass \
                     --scenarios-dir)"
                );
            }
            None => {
                let _ = writeln!(out, "EXAMPLE: none in the shipped scenarios");
            }
        }
        Ok(out)
    }

    /// The whole reference as Markdown: the file's top level, every step with its fields and an example, and the
    /// shared types.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "<!-- Generated by `svcbench explain --markdown`; `cargo test` fails when it is stale. Edit the doc \
             comments of harness/src/scenario/{file,raw_*}.rs instead. -->\n\n# Scenario reference\n\n",
        );
        out.push_str(
            "A scenario is a YAML file in `scenarios/`: a `name`, a `description` and a list of `steps`, run in \
             order. Each step is a map with exactly one key, the step's name; actions change the cluster, \
             assertions (`expect…`) are retried until they hold or their `timeout` passes, measurements \
             (`measure…`, `converge`) generate load or time a change. Validate a file with `svcbench validate \
             FILE`; describe a step or field in the terminal with `svcbench explain STEP[.FIELD]`; editors that \
             read the `# yaml-language-server: $schema=…` line of the shipped scenarios complete and check fields \
             from [`scenario.schema.json`](scenario.schema.json) (`svcbench schema`).\n\n",
        );
        out.push_str("## Top level\n\n");
        self.field_table(&mut out, &self.schema);
        out.push_str("\n## Steps\n\n| Step | What it does |\n|---|---|\n");
        for (name, description) in self.steps() {
            let _ = writeln!(out, "| [`{name}`](#{}) | {} |", name.to_lowercase(), cell(&description));
        }
        for (name, description) in self.steps() {
            let schema = self.step_schema(&name);
            let _ = writeln!(out, "\n### {name}\n\n{description}\n");
            if self.fields(&schema).is_empty() {
                let _ = writeln!(out, "Value: {}\n", self.type_name(&schema));
            } else {
                self.field_table(&mut out, &schema);
            }
            if let Some(e) = self.example(std::slice::from_ref(&name)) {
                let file = e.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let _ = writeln!(out, "\nExample ([{file}]({file}), line {}):\n\n```yaml\n{}\n```", e.line, e.text);
            }
        }
        out.push_str("\n## Types\n\nThe maps several steps share (named in the tables above).\n");
        // Steps have their own section; enumerations and unions are spelled out where they are used.
        for def in self.shared_types() {
            let schema = &self.schema["$defs"][&def];
            let _ = writeln!(
                out,
                "\n### {}\n\n{}\n",
                display_name(&def),
                schema["description"].as_str().unwrap_or_default()
            );
            self.field_table(&mut out, schema);
        }
        out
    }

    /// The shared types' names as the reference shows them.
    fn type_names(&self) -> Vec<String> {
        self.shared_types().iter().map(|def| display_name(def)).collect()
    }

    /// The `$defs` keys of the maps several steps share (not a step's own value).
    fn shared_types(&self) -> Vec<String> {
        let step_defs: Vec<Value> = self.steps().iter().map(|(n, _)| self.step_schema(n)).collect();
        let defs = self.schema["$defs"].as_object().cloned().unwrap_or_default();
        defs.iter()
            .filter(|(def, d)| d["properties"].is_object() && !step_defs.contains(&reference_to(def)))
            .map(|(def, _)| def.clone())
            .collect()
    }

    /// The `$defs` key of a shared type named as the reference shows it.
    fn type_named(&self, name: &str) -> Option<String> {
        self.shared_types().into_iter().find(|def| display_name(def) == name)
    }

    fn step_list(&self) -> String {
        let mut out = String::from("STEPS (svcbench explain STEP[.FIELD] for one of them):\n");
        for (name, description) in self.steps() {
            let _ = writeln!(out, "    {name:<20} {description}");
        }
        let _ = writeln!(out, "\nTYPES (svcbench explain TYPE[.FIELD]): {}", self.type_names().join(", "));
        out
    }

    fn field_table(&self, out: &mut String, schema: &Value) {
        out.push_str("| Field | Type | Required | Description |\n|---|---|---|---|\n");
        for f in self.fields(schema) {
            let required = if f.required { "yes" } else { "" };
            let _ = writeln!(
                out,
                "| `{}` | {} | {required} | {} |",
                f.name,
                cell(&self.type_name(&f.schema)),
                cell(&f.description)
            );
        }
    }

    /// The schema of a step's value.
    fn step_schema(&self, step: &str) -> Value {
        let variants = self.schema["$defs"]["RawStep"]["oneOf"].as_array().cloned().unwrap_or_default();
        variants.iter().find_map(|v| v["properties"].get(step).cloned()).unwrap_or(Value::Null)
    }

    /// A `$ref`'s target (or the schema itself).
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
            Some(def) => &self.schema["$defs"][def],
            None => schema,
        }
    }

    /// The schema's alternatives, with `null` (an omitted optional field) left out.
    fn alternatives<'a>(&'a self, schema: &'a Value) -> Vec<&'a Value> {
        let schema = self.resolve(schema);
        match schema["anyOf"].as_array().or_else(|| schema["oneOf"].as_array()) {
            Some(alts) if alts.iter().all(|a| a.get("const").is_none()) => {
                alts.iter().filter(|a| a["type"] != "null").flat_map(|a| self.alternatives(a)).collect()
            }
            _ => vec![schema],
        }
    }

    /// The fields of an object schema (every object alternative's, for a field that takes several forms).
    fn fields(&self, schema: &Value) -> Vec<Field> {
        let mut out: Vec<Field> = Vec::new();
        // A list's fields are its items' (`expose.ports.targetPort`).
        let alts: Vec<&Value> = self
            .alternatives(schema)
            .into_iter()
            .flat_map(|a| if a["items"].is_object() { self.alternatives(&a["items"]) } else { vec![a] })
            .collect();
        for alt in alts {
            let required: Vec<&str> =
                alt["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            for (name, field) in alt["properties"].as_object().into_iter().flatten() {
                if out.iter().any(|f| &f.name == name) {
                    continue;
                }
                out.push(Field {
                    name: name.clone(),
                    required: required.contains(&name.as_str()),
                    description: field["description"].as_str().unwrap_or_default().to_owned(),
                    schema: field.clone(),
                });
            }
        }
        // Required first, then by name: what must be written comes before what may be.
        out.sort_by(|a, b| b.required.cmp(&a.required).then_with(|| a.name.cmp(&b.name)));
        out
    }

    /// The allowed values of an enumeration, with their descriptions.
    fn values(&self, schema: &Value) -> Vec<(String, String)> {
        let schema = self.resolve(schema);
        let mut out = Vec::new();
        for alt in self.alternatives(schema) {
            let alt = self.resolve(alt);
            for v in alt["oneOf"].as_array().into_iter().flatten() {
                if let Some(c) = v["const"].as_str() {
                    out.push((format!("`{c}`"), v["description"].as_str().unwrap_or_default().to_owned()));
                }
            }
            for v in alt["enum"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                out.push((format!("`{v}`"), String::new()));
            }
        }
        out
    }

    /// A short type name: `string`, `integer 0–65535`, `list of Record`, `` `IPv4` | `IPv6` ``, `PodSet`.
    fn type_name(&self, schema: &Value) -> String {
        if let Some(def) = schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
            if def == "RawStep" {
                return "step".into();
            }
            let target = &self.schema["$defs"][def];
            if is_enum(target) {
                return self.values(target).into_iter().map(|(v, _)| v).collect::<Vec<_>>().join(" | ");
            }
            if target["properties"].is_object() {
                return display_name(def);
            }
            return self.type_name(target);
        }
        if let Some(alts) = schema["anyOf"].as_array().or_else(|| schema["oneOf"].as_array()) {
            if is_enum(schema) {
                return self.values(schema).into_iter().map(|(v, _)| v).collect::<Vec<_>>().join(" | ");
            }
            let names: Vec<String> = alts.iter().filter(|a| a["type"] != "null").map(|a| self.type_name(a)).collect();
            return names.join(" | ");
        }
        let kind = match &schema["type"] {
            Value::String(t) => t.clone(),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("any").to_owned(),
            _ => "any".into(),
        };
        match kind.as_str() {
            "array" if schema["maxItems"] == 0 => "`[]`".into(),
            "object" if schema["properties"].is_object() => {
                let keys: Vec<&str> =
                    schema["properties"].as_object().into_iter().flatten().map(|(k, _)| k.as_str()).collect();
                format!("{{{}}}", keys.join(", "))
            }
            "array" => match self.type_name(&schema["items"]) {
                item if item.contains(" | ") => format!("list of ({item})"),
                item => format!("list of {item}"),
            },
            "object" if schema["additionalProperties"].is_object() => {
                format!("map of string to {}", self.type_name(&schema["additionalProperties"]))
            }
            "integer" => match (schema["minimum"].as_i64(), schema["maximum"].as_i64()) {
                (Some(lo), Some(hi)) => format!("integer {lo}–{hi}"),
                (Some(lo), None) => format!("integer ≥ {lo}"),
                _ => "integer".into(),
            },
            "string" if schema["pattern"].is_string() => "duration (`10s`, `500ms`)".into(),
            _ => kind,
        }
    }

    /// The shortest shipped step of this kind that uses the field path (`[step, field, …]`).
    fn example(&self, path: &[String]) -> Option<&Example> {
        let (step, fields) = path.split_first()?;
        self.examples
            .get(step)?
            .iter()
            .filter(|e| {
                let mut v = &e.value;
                fields.iter().all(|f| match v.get(f) {
                    Some(inner) => {
                        v = inner;
                        true
                    }
                    None => false,
                })
            })
            .min_by_key(|e| (e.text.lines().count(), e.text.len()))
    }
}

/// One field of an object schema.
struct Field {
    name: String,
    required: bool,
    description: String,
    schema: Value,
}

/// The source lines `from..=to` (1-based) of a step, without trailing blank or comment lines.
fn step_text(lines: &[&str], from: usize, to: usize) -> String {
    let from = from.max(1);
    let mut chosen: Vec<&str> = lines.get(from - 1..to.max(from).min(lines.len())).unwrap_or_default().to_vec();
    while chosen.last().is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        chosen.pop();
    }
    let indent =
        chosen.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    chosen.iter().map(|l| l.get(indent..).unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// An enumeration of strings (each possibly described).
fn is_enum(schema: &Value) -> bool {
    schema["enum"].is_array()
        || schema["oneOf"].as_array().is_some_and(|alts| alts.iter().all(|a| a.get("const").is_some()))
}

fn reference_to(def: &str) -> Value {
    serde_json::json!({ "$ref": format!("#/$defs/{def}") })
}

/// `RawPodSet` → `PodSet`: the Rust type's prefix means nothing to an author.
fn display_name(def: &str) -> String {
    def.strip_prefix("Raw").unwrap_or(def).to_owned()
}

fn indent(text: &str, by: usize) -> String {
    text.lines().map(|l| format!("{:by$}{l}", "")).collect::<Vec<_>>().join("\n")
}

/// Text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// ", did you mean `x`?" when one known name is a typo away.
fn nearest<'a>(written: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (strsim::damerau_levenshtein(&written.to_lowercase(), &k.to_lowercase()), k))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= 2.max(written.len() / 3))
        .map(|(_, k)| format!(", did you mean `{k}`?"))
        .unwrap_or_default()
}
