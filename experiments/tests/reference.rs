//! The config reference (`config::reference::KEYS`, `docs/config.md`) against the schema: every
//! documented key is accepted by the schema and read by the studies it names, every key the
//! schema accepts is documented, and a key a study does not read is refused.

mod common;

use std::collections::BTreeSet;

use mcd_experiments::config::reference::{self, KEYS};
use mcd_experiments::config::{self, ConfigError, StudyKind};

#[allow(clippy::result_large_err)]
fn load(text: &str, overrides: &[String]) -> Result<config::Experiment, ConfigError> {
    let o: Vec<&str> = overrides.iter().map(String::as_str).collect();
    common::load_text(text, &o)
}

/// A valid single-run config of each study.
fn base(study: StudyKind) -> String {
    match study {
        StudyKind::Co2 => common::tiny_config()
            .split("variants:")
            .next()
            .unwrap()
            .to_string(),
        StudyKind::MnistRotated => common::tiny_mnist_config(),
        StudyKind::Uci => format!(
            "study: uci\nname: u\ndata:\n  dir: {}\nmodel:\n  activation: relu\ntrainer:\n  \
             optimizer: adam\n  lr: 0.001\nprecision:\n  length_scale: 0.01\npredict:\n  \
             samples: 20\nuci:\n  datasets: [yacht]\n  epoch_multiplier: 1\n",
            common::data_dir().display()
        ),
        StudyKind::ConcreteSynthetic => common::tiny_synthetic_config(),
        StudyKind::ActiveLearning => common::tiny_active_learning_config(),
    }
}

#[test]
fn docs_config_md_is_the_generated_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == reference::markdown(),
        "docs/config.md differs from the reference in experiments/src/config/reference.rs: \
         regenerate it with `target/debug/mcd keys > docs/config.md`"
    );
}

#[test]
fn every_documented_key_is_in_the_schema_and_read_by_its_studies() {
    for k in KEYS {
        if k.key.contains("[]") || k.key == "variants" || k.key == "sweep" {
            continue; // not settable with --set; covered by the config tests
        }
        // The schedule's fields belong to one kind each.
        let first = match k.key {
            "trainer.schedule.gamma" | "trainer.schedule.power" => {
                Some("trainer.schedule={kind: inv, gamma: 0.1, power: 0.5}")
            }
            "trainer.schedule.final_fraction" => {
                Some("trainer.schedule={kind: cosine, final_fraction: 0.5}")
            }
            _ => None,
        };
        let set = format!("{}={}", k.key, k.example);
        let overrides: Vec<String> = first
            .map(str::to_string)
            .into_iter()
            .chain([set.clone()])
            .collect();
        for &study in k.studies {
            if let Err(e) = load(&base(study), &overrides) {
                let msg = e.to_string();
                assert!(
                    !msg.contains("unknown field") && !msg.contains("does not read"),
                    "{}: --set {set} in a {study:?} config: {msg}",
                    k.key
                );
            }
        }
        for &study in [
            StudyKind::Co2,
            StudyKind::MnistRotated,
            StudyKind::Uci,
            StudyKind::ConcreteSynthetic,
            StudyKind::ActiveLearning,
        ]
        .iter()
        {
            if k.studies.contains(&study) {
                continue;
            }
            let e = load(&base(study), &overrides)
                .expect_err(&format!("{study:?} should refuse --set {set}"));
            assert!(
                e.key.split('.').next() == k.key.split('.').next() || e.message.contains(k.key),
                "{study:?}, --set {set}: refused, but for a key of another section: {e}"
            );
        }
    }
}

/// The fields serde expects in the section at `key` (from its unknown-field error).
fn schema_fields(study: StudyKind, section: &str) -> Vec<String> {
    let key = if section.is_empty() {
        "zz_unknown".to_string()
    } else {
        format!("{section}.zz_unknown")
    };
    let e = load(&base(study), &[format!("{key}=1")]).expect_err("an unknown key");
    let msg = e.to_string();
    let expected = msg
        .split("expected one of ")
        .nth(1)
        .or_else(|| msg.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("{section}: no field list in `{msg}`"));
    // The names stand between backticks: "`a`, `b` or `c`".
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|f| {
            if section.is_empty() {
                f.to_string()
            } else {
                format!("{section}.{f}")
            }
        })
        .collect()
}

#[test]
fn every_key_of_the_schema_is_documented() {
    let documented: BTreeSet<&str> = KEYS.iter().map(|k| k.key).collect();
    let mut seen = BTreeSet::new();
    for (study, section) in [
        (StudyKind::Co2, ""),
        (StudyKind::Co2, "data"),
        (StudyKind::Co2, "model"),
        (StudyKind::Co2, "trainer"),
        (StudyKind::Co2, "precision"),
        (StudyKind::Co2, "predict"),
        (StudyKind::Co2, "co2"),
        (StudyKind::Co2, "co2.band_sd"),
        (StudyKind::MnistRotated, "mnist"),
        (StudyKind::Uci, "uci"),
        (StudyKind::ConcreteSynthetic, "concrete_synthetic"),
        (StudyKind::ActiveLearning, "active_learning"),
    ] {
        for field in schema_fields(study, section) {
            assert!(
                documented.contains(field.as_str()),
                "the schema accepts `{field}`, which the reference does not list"
            );
            seen.insert(field);
        }
    }
    assert!(seen.len() > 40, "too few fields found: {seen:?}");
    // The schedule is a tagged enum: its fields per kind.
    for (kind, fields) in [("inv", "gamma, power"), ("cosine", "final_fraction")] {
        for f in fields.split(", ") {
            assert!(
                documented.contains(format!("trainer.schedule.{f}").as_str()),
                "{kind}: {f}"
            );
        }
    }
}

#[test]
fn a_key_the_study_does_not_read_is_refused() {
    // predict.samples: the mnist_rotated study takes its T from the mnist section.
    let text = common::tiny_mnist_config().replace(
        "predict:\n  memory_budget_mb: 32\n",
        "predict:\n  samples: 5\n  memory_budget_mb: 32\n",
    );
    let e = load(&text, &[]).unwrap_err();
    assert_eq!(e.key, "predict.samples", "{e}");
    assert!(
        e.to_string().contains("mnist_rotated study does not read"),
        "{e}"
    );
    assert!(e.line.is_some(), "{e}");
    // Another study's section.
    let text = format!(
        "{}mnist:\n  digit_index: 1\n  angles: [0]\n",
        base(StudyKind::Co2)
    );
    let e = load(&text, &[]).unwrap_err();
    assert_eq!(e.key, "mnist", "{e}");
    // The co2 study needs T.
    let text = base(StudyKind::Co2).replace("  samples: 20\n", "");
    assert_eq!(load(&text, &[]).unwrap_err().key, "predict.samples");
}
