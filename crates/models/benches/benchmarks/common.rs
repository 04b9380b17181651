//! Shared by the benches of mcd-models and mcd-trainer (the trainer includes this file by path):
//! the CO2 net, the plain-matmul reference, and a report of median times and GFLOP/s taken from
//! criterion's own samples.

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use mcd_models::lenet::{LeNet, LeNetDropout, LeNetSpec};
use mcd_models::mc::McConfig;
use mcd_models::mlp::{Mlp, MlpSpec};
use tch::{nn, Device, Kind, Tensor};

/// The paper's CO2 net: 1 -> 4 x 1024 (ReLU, dropout 0.1 after each) -> 1, Caffe "xavier" init.
pub fn co2_spec() -> MlpSpec {
    MlpSpec::paper_co2()
}

/// A CO2 net with its variables.
pub fn co2_net() -> (nn::VarStore, Mlp) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Mlp::new(&vs.root(), &co2_spec(), 1);
    (vs, net)
}

/// Inputs of MC prediction on the CO2 net.
pub const MC_INPUTS: usize = 1000;

/// The MC benches' inputs: [`MC_INPUTS`] points spread over the CO2 net's input range.
pub fn mc_inputs() -> Tensor {
    let n = MC_INPUTS as i64;
    Tensor::linspace(-2.0, 3.5, n, (Kind::Float, Device::Cpu)).view([n, 1])
}

/// MC passes T: 100, or `MCD_BENCH_T` for a quicker run.
pub fn mc_passes() -> usize {
    std::env::var("MCD_BENCH_T")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// The seed of the MC benches' masks.
pub const MC_SEED: u64 = 7;

/// MC prediction on the CO2 net with `budget` bytes: [`mc_passes`] passes, [`MC_SEED`]. The
/// criterion rows `mc/mc_samples_*` and the paired rounds' Rust side both run it.
pub fn mc_config(budget: usize) -> McConfig {
    McConfig {
        samples: mc_passes(),
        memory_budget_bytes: budget,
        seed: MC_SEED,
    }
}

/// The paper's MNIST LeNet (p = 0.5) with dropout after FC 500 only, or also after the convs.
pub fn lenet(placement: LeNetDropout) -> (nn::VarStore, LeNet) {
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = LeNetSpec::mnist(0.5, placement);
    let net = LeNet::new(&vs.root(), &spec, 1);
    (vs, net)
}

/// Multiply-adds of LeNet per image: (conv1 + conv2 + FC 500, FC 10). The first part is the
/// deterministic prefix when dropout follows FC 500 only.
pub fn lenet_macs() -> (f64, f64) {
    let conv1 = 20.0 * 24.0 * 24.0 * 25.0;
    let conv2 = 50.0 * 8.0 * 8.0 * 20.0 * 25.0;
    let fc1 = 800.0 * 500.0;
    (conv1 + conv2 + fc1, 500.0 * 10.0)
}

/// The first `n` MNIST test images and labels from the repository's data folder.
pub fn mnist_test(n: i64) -> (Tensor, Tensor) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let root = mcd_datasets::DataRoot::open(&dir).expect("the repository's data folder");
    let set = mcd_datasets::mnist::load(&root, mcd_datasets::Split::Test).expect("MNIST test set");
    (set.images.narrow(0, 0, n), set.labels.narrow(0, 0, n))
}

/// Multiply-adds of one forward pass of one input through a dense net with these widths.
pub fn forward_macs(spec: &MlpSpec) -> f64 {
    let mut dims = vec![spec.input_dim];
    dims.extend(&spec.hidden);
    dims.push(spec.output_dim);
    dims.windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

/// One measured workload.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub median_s: f64,
    /// Floating-point operations per iteration (2 per multiply-add), when counted.
    pub flop: Option<f64>,
    /// Elements processed per iteration, for per-element costs.
    pub elements: Option<f64>,
}

/// Collects rows and prints / writes them at the end.
#[derive(Debug)]
pub struct Report {
    crate_name: &'static str,
    rows: Vec<Row>,
    /// (label, slower workload, its multiplier, faster workload): printed as median ratios.
    ratios: Vec<(String, String, f64, String)>,
}

impl Report {
    /// An empty report for the bench binary of `crate_name`.
    pub fn new(crate_name: &'static str) -> Self {
        Self {
            crate_name,
            rows: Vec::new(),
            ratios: Vec::new(),
        }
    }

    /// Asks `finish` to print `times` x median(`slower`) / median(`faster`) (full `group/id`
    /// names; `times` scales the slower workload to the same amount of work).
    pub fn ratio(&mut self, label: &str, slower: &str, times: f64, faster: &str) {
        self.ratios.push((
            label.to_string(),
            slower.to_string(),
            times,
            faster.to_string(),
        ));
    }

    /// A criterion group for slow workloads: 10 samples of one iteration each.
    pub fn group<'a>(
        c: &'a mut Criterion,
        name: &str,
        seconds: u64,
    ) -> BenchmarkGroup<'a, WallTime> {
        let mut g = c.benchmark_group(name);
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(seconds));
        g
    }

    /// Benchmarks `f` in `group` and records the median of criterion's measurement samples.
    pub fn bench(
        &mut self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        group_name: &str,
        id: &str,
        flop: Option<f64>,
        elements: Option<f64>,
        mut f: impl FnMut(),
    ) {
        let mut samples: Vec<f64> = Vec::new();
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    f();
                }
                let e = t.elapsed();
                samples.push(e.as_secs_f64() / iters.max(1) as f64);
                e
            })
        });
        // The last 10 calls are the measurement samples (the earlier ones are warm-up); none
        // when a filter skipped this benchmark.
        let keep = samples.len().min(10);
        let mut tail = samples.split_off(samples.len() - keep);
        if tail.is_empty() {
            return;
        }
        tail.sort_by(f64::total_cmp);
        let mid = tail.len() / 2;
        let median_s = if tail.len() % 2 == 1 {
            tail[mid]
        } else {
            0.5 * (tail[mid - 1] + tail[mid])
        };
        self.rows.push(Row {
            name: format!("{group_name}/{id}"),
            median_s,
            flop,
            elements,
        });
    }

    /// Prints the summary table and writes `$MCD_BENCH_OUT/<crate>.tsv` when that is set.
    pub fn finish(&self) {
        if self.rows.is_empty() {
            return;
        }
        // The faster of the two matmul kernels (MKL's, oneDNN's) is the reference.
        let is_matmul = |r: &Row| r.name.starts_with("matmul/");
        let reference = self
            .rows
            .iter()
            .filter(|r| is_matmul(r))
            .filter_map(gflops)
            .reduce(f64::max);
        println!(
            "\n{} summary (median of criterion's samples):",
            self.crate_name
        );
        println!(
            "{:<44} {:>12} {:>10} {:>12} {:>10}",
            "workload", "median", "GFLOP/s", "% of matmul", "ns/elem"
        );
        for r in &self.rows {
            let g = gflops(r);
            println!(
                "{:<44} {:>12} {:>10} {:>12} {:>10}",
                r.name,
                format!("{:.4} ms", r.median_s * 1e3),
                g.map_or("-".into(), |g| format!("{g:.1}")),
                match (g, reference) {
                    (Some(g), Some(m)) if !is_matmul(r) => format!("{:.1}%", 100.0 * g / m),
                    _ => "-".into(),
                },
                r.elements
                    .map_or("-".into(), |n| format!("{:.3}", r.median_s * 1e9 / n)),
            );
        }
        for (label, slower, times, faster) in &self.ratios {
            let median = |n: &str| self.rows.iter().find(|r| r.name == *n).map(|r| r.median_s);
            if let (Some(a), Some(b)) = (median(slower), median(faster)) {
                println!(
                    "{label}: {:.2}x  ({times} x {slower} / {faster}, medians of one run)",
                    times * a / b
                );
            }
        }
        if let Some(dir) = std::env::var_os("MCD_BENCH_OUT") {
            let path = std::path::Path::new(&dir).join(format!("{}.tsv", self.crate_name));
            if let Err(e) = self.write_tsv(&path) {
                eprintln!("cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }

    fn write_tsv(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = std::fs::File::create(path)?;
        writeln!(f, "name\tmedian_s\tflop\telements")?;
        for r in &self.rows {
            let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:e}"));
            writeln!(
                f,
                "{}\t{:e}\t{}\t{}",
                r.name,
                r.median_s,
                opt(r.flop),
                opt(r.elements)
            )?;
        }
        Ok(())
    }
}

fn gflops(r: &Row) -> Option<f64> {
    r.flop.map(|f| f / r.median_s / 1e9)
}

/// The reference: a plain large f32 matmul through tch ([8192, 1024] x [1024, 1024]) into a
/// preallocated output, i.e. the kernel's speed without allocation costs.
pub fn bench_matmul(c: &mut Criterion, report: &mut Report) {
    let (m, k, n) = (8192i64, 1024i64, 1024i64);
    let a = Tensor::randn([m, k], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([k, n], (Kind::Float, Device::Cpu));
    let out = Tensor::zeros([m, n], (Kind::Float, Device::Cpu));
    let mut g = Report::group(c, "matmul", 3);
    report.bench(
        &mut g,
        "matmul",
        "f32_8192x1024x1024",
        Some(2.0 * (m * k * n) as f64),
        None,
        || {
            let _ = a.mm_out(&out, &b);
        },
    );
    // The same product through oneDNN's inner product (what `mcd_models::linear` uses for
    // large batches), the input already in its layout: the kernel with its per-call weight
    // reorder, without the input and output copies.
    let packed = a.g_to_mkldnn(None);
    let weight = b.tr().contiguous();
    report.bench(
        &mut g,
        "matmul",
        "f32_8192x1024x1024_onednn",
        Some(2.0 * (m * k * n) as f64),
        None,
        || {
            let _ = packed.mkldnn_linear(&weight, None::<Tensor>);
        },
    );
    g.finish();
}
