//! The UCI grid's training work: 12 one-hidden-layer nets (50 units, 8 inputs, input and hidden
//! dropout, Adam, batch 128) for one epoch over 800 rows, trained as one stacked model and one
//! net at a time through the same trainer; and whole grids on Boston's shape (20 splits x 12
//! settings = 240 nets, 13 inputs, 50 units, 364 rows: 20 epochs of 3 steps) and Protein's
//! (5 x 12 = 60 nets, 9 inputs, 100 units: 3 epochs of 10 steps), each through libtorch's
//! stacked trainer and the fused one
//! (`mcd_trainer::fused`). Useful flops count 6 per multiply-add (forward, and the backward's
//! two products), as for every training row here.

use criterion::Criterion;
use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
use mcd_models::stacked::{Member, StackedMlp};
use mcd_trainer::fused::train_fused;
use mcd_trainer::stacked::{train_stacked, StackedData, StackedSpec};
use mcd_trainer::Silent;
use tch::{Device, Kind, Tensor};

use super::common::Report;

const ROWS: i64 = 800;
const D: i64 = 8;
const HIDDEN: usize = 50;
const BATCH: usize = 128;

fn spec() -> MlpSpec {
    shaped(D as usize, HIDDEN)
}

fn shaped(inputs: usize, hidden: usize) -> MlpSpec {
    MlpSpec {
        input_dim: inputs,
        hidden: vec![hidden],
        output_dim: 1,
        activation: Activation::Relu,
        dropout: 0.0,
        input_dropout: 0.0,
        init: InitScheme::GlorotUniform,
        first_layer: None,
    }
}

/// The grid of one split: 4 drop rates x 3 taus (weight decays).
fn grid(split: u64) -> Vec<(Member, f64)> {
    let mut out = Vec::new();
    for (i, p) in [0.005, 0.01, 0.05, 0.1].into_iter().enumerate() {
        for (j, wd) in [1e-6, 2e-6, 4e-6].into_iter().enumerate() {
            let seed = split * 100 + (i * 3 + j) as u64;
            out.push((
                Member {
                    dropout: p,
                    input_dropout: p,
                    seed,
                },
                wd,
            ));
        }
    }
    out
}

fn epoch_spec(members: &[(Member, f64)]) -> StackedSpec {
    StackedSpec {
        epochs: 1,
        batch_size: BATCH,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: members.iter().map(|m| m.1).collect(),
        shuffle_seeds: members.iter().map(|m| m.0.seed).collect(),
        log_every: usize::MAX,
    }
}

/// One epoch of `members` as one stack, member m on set `sets[m]`.
fn epoch(members: &[(Member, f64)], stack: &StackedMlp, data: &StackedData) {
    train_stacked(stack, data, &epoch_spec(members), &mut Silent).expect("training runs");
}

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let opts = (Kind::Float, Device::Cpu);
    let set = |s: i64| {
        let x = Tensor::randn([ROWS, D], opts) * (1.0 + s as f64 * 0.01);
        let y = x.sum_dim_intlist(1, true, Kind::Float).sin();
        (x, y)
    };
    // Forward + backward of both layers, per row and net.
    let macs = (D as f64 * HIDDEN as f64 + HIDDEN as f64) * ROWS as f64;
    let mut g = Report::group(c, "stacked", 5);

    let one = grid(0);
    let (x, y) = set(0);
    let members: Vec<Member> = one.iter().map(|m| m.0).collect();
    let stack = StackedMlp::new(&spec(), &members);
    let data = StackedData::new(&[x.shallow_clone()], &[y.shallow_clone()], vec![0; 12]).unwrap();
    report.bench(
        &mut g,
        "stacked",
        "stacked_12_nets_epoch",
        Some(6.0 * macs * 12.0),
        None,
        || epoch(&one, &stack, &data),
    );

    let alone: Vec<(StackedMlp, StackedData)> = one
        .iter()
        .map(|m| {
            let data =
                StackedData::new(&[x.shallow_clone()], &[y.shallow_clone()], vec![0]).unwrap();
            (StackedMlp::new(&spec(), &[m.0]), data)
        })
        .collect();
    report.bench(
        &mut g,
        "stacked",
        "one_at_a_time_12_nets_epoch",
        Some(6.0 * macs * 12.0),
        None,
        || {
            for (m, (stack, data)) in one.iter().zip(&alone) {
                epoch(std::slice::from_ref(m), stack, data);
            }
        },
    );
    report.ratio(
        "stacked trainer speed-up, 12 nets (one split's grid)",
        "stacked/one_at_a_time_12_nets_epoch",
        1.0,
        "stacked/stacked_12_nets_epoch",
    );

    for shape in [
        GridShape {
            name: "boston",
            splits: 20,
            inputs: 13,
            hidden: 50,
            rows: 364,
            epochs: 20,
        },
        GridShape {
            name: "protein",
            splits: 5,
            inputs: 9,
            hidden: 100,
            rows: 1280,
            epochs: 3,
        },
    ] {
        grid_bench(&mut g, report, &shape);
    }
    g.finish();
}

/// A data set's whole grid search as the uci study stacks it.
struct GridShape {
    name: &'static str,
    splits: u64,
    inputs: usize,
    hidden: usize,
    /// Training rows per split.
    rows: i64,
    /// Epochs per measured call: enough steps that the per-call set-up (copying weights in and
    /// out, allocating buffers) is a small part, as in a real run of thousands of epochs.
    epochs: usize,
}

/// `shape.epochs` epochs of `shape`'s grid stack through libtorch's stacked trainer and the
/// fused one, and their ratio.
fn grid_bench(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    report: &mut Report,
    shape: &GridShape,
) {
    let opts = (Kind::Float, Device::Cpu);
    let d = shape.inputs as i64;
    let all: Vec<(Member, f64)> = (0..shape.splits).flat_map(grid).collect();
    let sets: Vec<(Tensor, Tensor)> = (0..shape.splits)
        .map(|s| {
            let x = Tensor::randn([shape.rows, d], opts) * (1.0 + s as f64 * 0.01);
            let y = x.sum_dim_intlist(1, true, Kind::Float).sin();
            (x, y)
        })
        .collect();
    let (xs, ys): (Vec<Tensor>, Vec<Tensor>) = sets.into_iter().unzip();
    let members: Vec<Member> = all.iter().map(|m| m.0).collect();
    let spec = shaped(shape.inputs, shape.hidden);
    let data = StackedData::new(&xs, &ys, (0..all.len()).map(|m| m / 12).collect()).unwrap();
    let macs = (shape.inputs * shape.hidden + shape.hidden) as f64 * shape.rows as f64;
    let flop = Some(6.0 * macs * all.len() as f64 * shape.epochs as f64);
    let nets = all.len();
    let epochs = shape.epochs;
    let torch_name = format!("{}_{nets}_nets_{epochs}_epochs", shape.name);
    let fused_name = format!("{}_{nets}_nets_{epochs}_epochs_fused", shape.name);
    let run = StackedSpec {
        epochs,
        ..epoch_spec(&all)
    };
    let torch_stack = StackedMlp::new(&spec, &members);
    report.bench(g, "stacked", &torch_name, flop, None, || {
        train_stacked(&torch_stack, &data, &run, &mut Silent).expect("training runs");
    });
    let fused_stack = StackedMlp::new(&spec, &members);
    report.bench(g, "stacked", &fused_name, flop, None, || {
        train_fused(&fused_stack, &data, &run, &mut Silent).expect("training runs");
    });
    report.ratio(
        &format!(
            "fused over libtorch stacked trainer, {} grid ({nets} nets)",
            shape.name
        ),
        &format!("stacked/{torch_name}"),
        1.0,
        &format!("stacked/{fused_name}"),
    );
}
