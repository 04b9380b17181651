//! Gaussian dropout (`model.method: gaussian_dropout`): the studies that refuse it, and a tiny
//! co2 run next to MC dropout that writes its tables.

mod common;

#[test]
fn studies_other_than_co2_and_the_dropout_warmup_refuse_gaussian_dropout() {
    let text = common::tiny_mnist_config().replace(
        "  dropout: 0.25\n",
        "  dropout: 0.25\n  method: gaussian_dropout\n",
    );
    let e = common::load_text(&text, &[]).expect_err("mnist takes mc_dropout only");
    assert_eq!(e.key, "model.method", "{e}");
    assert!(e.to_string().contains("gaussian_dropout"), "{e}");
    // No fixed Bernoulli rates to warm up.
    let e = common::load_text(
        &common::tiny_config(),
        &[
            "model.method=gaussian_dropout",
            "trainer.dropout_warmup=0.5",
        ],
    )
    .expect_err("no warm-up");
    assert_eq!(e.key, "trainer.dropout_warmup", "{e}");
    // co2 takes it.
    let exp =
        common::load_text(&common::tiny_config(), &["model.method=gaussian_dropout"]).unwrap();
    assert_eq!(exp.runs[0].model.method.name(), "gaussian_dropout");
}

#[test]
fn tiny_co2_run_with_gaussian_dropout_writes_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::tiny_config()
        .replace("  small_samples: 5\n", "  small_samples: 5\n  gp: false\n")
        .replace(
            "set: {model.activation: tanh, trainer.lr: 0.005}",
            "set: {model.method: gaussian_dropout}",
        )
        .replace("  - name: tanh\n", "  - name: gaussian_dropout\n");
    let cfg = common::write(dir.path(), "gauss.yaml", &text);
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    let folder = results.join("tiny");
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
    let summary = read("tables/summary.csv");
    let mut lines = summary.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row = |model: &str| {
        rows.iter()
            .find(|r| r[col("model")] == model)
            .unwrap_or_else(|| panic!("no `{model}` row in {summary}"))
    };
    let num = |r: &Vec<&str>, name: &str| -> f64 { r[col(name)].parse().unwrap() };
    let (gauss, mc) = (row("Gaussian dropout"), row("MC dropout relu"));
    // Its passes differ (epistemic sd > 0), and the noise term is MC dropout's 1/tau.
    assert!(num(gauss, "epistemic_sd_at_x_star") > 0.0, "{gauss:?}");
    assert_eq!(num(gauss, "tau"), num(mc, "tau"));
    let tau = num(gauss, "tau");
    assert!((num(gauss, "aleatoric_sd_at_x_star") - 1.0 / tau.sqrt()).abs() < 1e-12);
    // Few passes for a ReLU net with noise: its (T=5) row.
    assert!(summary.contains("Gaussian dropout (T=5)"), "{summary}");
    let predictions = read("tables/predictions.csv");
    let columns: Vec<&str> = predictions.lines().next().unwrap().split(',').collect();
    for c in ["gaussian_dropout_mean", "gaussian_dropout_sd", "relu_mean"] {
        assert!(columns.contains(&c), "predictions lack {c}: {columns:?}");
    }
    let log = read("run.log");
    assert!(log.contains("[gaussian_dropout]"), "{log}");
}
