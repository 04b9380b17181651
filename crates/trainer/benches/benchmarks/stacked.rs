//! The UCI grid's training work: 12 one-hidden-layer nets (50 units, 8 inputs, input and hidden
//! dropout, Adam, batch 128) for one epoch over 800 rows, trained as one stacked model and one
//! net at a time through the same trainer; and a whole 20-split grid (240 nets) stacked.

use criterion::Criterion;
use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
use mcd_models::stacked::{Member, StackedMlp};
use mcd_trainer::stacked::{train_stacked, StackedData, StackedSpec};
use mcd_trainer::Silent;
use tch::{Device, Kind, Tensor};

use super::common::Report;

const ROWS: i64 = 800;
const D: i64 = 8;
const HIDDEN: usize = 50;
const BATCH: usize = 128;

fn spec() -> MlpSpec {
    MlpSpec {
        input_dim: D as usize,
        hidden: vec![HIDDEN],
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

    // A whole data set's grid: 20 splits x 12 settings.
    let all: Vec<(Member, f64)> = (0..20).flat_map(grid).collect();
    let sets: Vec<(Tensor, Tensor)> = (0..20).map(set).collect();
    let (xs, ys): (Vec<Tensor>, Vec<Tensor>) = sets.into_iter().unzip();
    let members: Vec<Member> = all.iter().map(|m| m.0).collect();
    let stack = StackedMlp::new(&spec(), &members);
    let data = StackedData::new(&xs, &ys, (0..240).map(|m| m / 12).collect()).unwrap();
    report.bench(
        &mut g,
        "stacked",
        "stacked_240_nets_epoch",
        Some(6.0 * macs * 240.0),
        None,
        || epoch(&all, &stack, &data),
    );
    report.ratio(
        "stacked trainer speed-up, 240 nets (20 splits' grids) against 20 x the 12 one at a time",
        "stacked/one_at_a_time_12_nets_epoch",
        20.0,
        "stacked/stacked_240_nets_epoch",
    );
    g.finish();
}
