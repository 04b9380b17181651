//! Fuzzing the config loader: every shipped config, mutated (values of the wrong type or out of
//! range, keys deleted, duplicated or unknown, random bytes, truncation), gives either a valid
//! plan or one located error naming the file: never a panic.
//!
//! CI runs a bounded number of cases (seconds); `MCD_FUZZ_CASES=20000 cargo xtask test --test
//! fuzz_config -- --nocapture` is the long mode, and `MCD_FUZZ_SEED` varies the cases.

mod mutate;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mcd_experiments::config;
use mcd_experiments::yaml::{self, Mapping, Value};
use mutate::Rng;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn shipped_configs() -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(repo().join("configs"))
        .expect("configs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("reading a shipped config");
            (p, text)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 5,
        "expected the shipped configs, found {}",
        out.len()
    );
    out
}

fn random_value(rng: &mut Rng) -> Value {
    let number = |text: &str| yaml::parse(text).expect("a YAML scalar");
    match rng.below(16) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::String(String::new()),
        3 => Value::String(
            rng.pick(&["x", "relu ", "full", "all", "inv", "boston"])
                .to_string(),
        ),
        4 => number(rng.pick::<&str>(&["0", "-1", "1", "2", "9223372036854775807"])),
        5 => number("-9223372036854775808"),
        6 => number(rng.pick::<&str>(&["0.5", "-0.5", "1.5", "1.0e300", "-0.0"])),
        7 => number(rng.pick::<&str>(&[".nan", ".inf", "-.inf"])),
        8 => Value::Sequence(Vec::new()),
        9 => number("[1, -2, 0]"),
        10 => number("[a, 0.3]"),
        11 => Value::Mapping(Mapping::new()),
        12 => number("{kind: inv}"),
        13 => number("{a: 1}"),
        14 => number("{name: v, set: {model.dropout: 2}}"),
        _ => number("1e-320"),
    }
}

fn label(v: &Value) -> String {
    yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .replace('\n', " ")
}

/// Walks down a random path and changes what it finds there.
fn mutate_tree(rng: &mut Rng, v: &mut Value, depth: usize) -> String {
    match v {
        Value::Mapping(m) if !m.is_empty() && (depth == 0 || rng.below(3) > 0) => {
            let keys: Vec<Value> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(8) {
                0 => {
                    m.remove(&k);
                    format!("deleted `{}`", label(&k))
                }
                1 => {
                    let value = random_value(rng);
                    let text = format!("added `unexpected: {}`", label(&value));
                    m.insert(Value::String("unexpected".into()), value);
                    text
                }
                _ => {
                    let child = m.get_mut(&k).expect("a key just listed");
                    format!("{}.{}", label(&k), mutate_tree(rng, child, depth + 1))
                }
            }
        }
        Value::Sequence(s) if !s.is_empty() && rng.below(3) > 0 => {
            let i = rng.below(s.len());
            match rng.below(5) {
                0 => {
                    s.remove(i);
                    format!("removed item {i}")
                }
                1 => {
                    let item = s[i].clone();
                    s.push(item);
                    format!("repeated item {i}")
                }
                _ => format!("[{i}].{}", mutate_tree(rng, &mut s[i], depth + 1)),
            }
        }
        _ => {
            let new = random_value(rng);
            let text = format!("set to `{}`", label(&new));
            *v = new;
            text
        }
    }
}

/// One mutated config text and what was done to it.
fn mutate_config(rng: &mut Rng, text: &str) -> (String, String) {
    match rng.below(4) {
        0 | 1 => {
            let mut doc = yaml::parse(text).expect("shipped configs parse");
            let what = mutate_tree(rng, &mut doc, 0);
            (yaml::to_string(&doc).expect("serialising"), what)
        }
        2 => {
            // A key duplicated in place (YAML forbids it) or a line dropped.
            let lines: Vec<&str> = text.lines().collect();
            let i = rng.below(lines.len());
            let mut out: Vec<&str> = lines.clone();
            let what = if rng.below(2) == 0 {
                out.insert(i, lines[i]);
                format!("doubled line {}", i + 1)
            } else {
                out.remove(i);
                format!("removed line {}", i + 1)
            };
            (out.join("\n"), what)
        }
        _ => {
            let (bytes, what) = mutate::mutate_bytes(rng, text.as_bytes());
            (String::from_utf8_lossy(&bytes).into_owned(), what)
        }
    }
}

#[test]
#[allow(clippy::result_large_err)] // the loader's own error type, built once per case
fn mutated_shipped_configs_give_a_plan_or_a_located_error() {
    // Shipped configs name `data` relative to the repository root.
    std::env::set_current_dir(repo()).expect("cd to the repository");
    let configs = shipped_configs();
    let cases = mutate::cases(400);
    let seed = mutate::seed();
    let mut rng = Rng::new(seed);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for case in 0..cases {
        let (path, text) = &configs[case % configs.len()];
        let (mutated, what) = mutate_config(&mut rng, text);
        let loaded = catch_unwind(AssertUnwindSafe(|| config::load_str(path, &mutated, &[])));
        let context = || format!("case {case} (seed {seed}): {} with {what}", path.display());
        match loaded {
            Err(_) => panic!("the loader panicked on {}", context()),
            Ok(Ok(exp)) => {
                assert!(!exp.runs.is_empty(), "{}: a plan without runs", context());
                assert!(exp.runs.iter().all(|r| !r.name.is_empty()), "{}", context());
                *outcomes.entry("valid plan").or_default() += 1;
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert_eq!(&e.file, path, "{}: {msg}", context());
                assert!(!e.message.trim().is_empty(), "{}: empty message", context());
                assert!(
                    e.line.is_some() || !e.key.is_empty(),
                    "{}: the error names neither a line nor a key: {msg}",
                    context()
                );
                let kind = match (e.line.is_some(), e.key.is_empty()) {
                    (true, false) => "error with line and key",
                    (true, true) => "error with a line (YAML syntax)",
                    _ => "error with a key (no line)",
                };
                *outcomes.entry(kind).or_default() += 1;
            }
        }
    }
    eprintln!(
        "config fuzz: {cases} cases over {} configs (seed {seed}): {outcomes:?}",
        configs.len()
    );
    assert!(
        outcomes.len() >= 2,
        "the mutations should produce both plans and errors: {outcomes:?}"
    );
}
