//! One Adam step on the CO2 net, full batch (272 points): forward with dropout on, 0.5 * MSE,
//! backward, update; with the trainer's fused Adam and with libtorch's, inline, and through
//! `mcd_trainer::train_regression`. One SGD step of the
//! MNIST LeNet (p = 0.5) on a batch of 64 test images: cross-entropy, momentum 0.9, decay 5e-4.

use criterion::Criterion;
use mcd_trainer::adam::{AdamConfig, FusedAdam};
use mcd_trainer::{train_regression, LrSchedule, Optimizer, Silent, TrainSpec};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::common::{co2_net, co2_spec, forward_macs, lenet, lenet_macs, mnist_test, Report};
use mcd_models::lenet::LeNetDropout;

/// Points in the CO2 training set.
const N: i64 = 272;
/// Steps per `train_regression` call (the row reports the time per step).
const STEPS: usize = 20;

/// The trainer's regression loss: 0.5 * mean over points of the squared error.
fn half_mse(pred: &Tensor, y: &Tensor) -> Tensor {
    (pred - y)
        .square()
        .sum_dim_intlist(1, false, Kind::Float)
        .mean(Kind::Float)
        * 0.5
}

/// The CO2 training set's shape: N points of x in [-1.7, 1.7], y = sin(3x).
fn co2_points() -> (Tensor, Tensor) {
    let x = Tensor::linspace(-1.7, 1.7, N, (Kind::Float, Device::Cpu)).view([N, 1]);
    let y = (&x * 3.0).sin();
    (x, y)
}

/// `adam_step_co2_n272`: one step of a fresh CO2 net with the trainer's fused Adam, as a
/// closure that owns its net, optimiser and data (the criterion bench and the paired rounds
/// of `cargo xtask bench --compare` both run it).
pub fn co2_adam_step() -> impl FnMut() {
    let (x, y) = co2_points();
    let (vs, net) = co2_net();
    let mut fused = FusedAdam::new(&vs, AdamConfig::new(0.9, 0.999, 1e-6))
        .expect("Adam builds on a fresh VarStore")
        .expect("CPU f32 variables");
    move || fused.backward_step(&half_mse(&net.forward_t(&x, true), &y), 1e-4)
}

/// `sgd_step_lenet_b64`: one SGD step (momentum 0.9, decay 5e-4) of a fresh MNIST LeNet on
/// the first 64 test images, as a closure that owns its net, optimiser and batch.
pub fn lenet_sgd_step() -> impl FnMut() {
    let (images, labels) = mnist_test(64);
    let (lenet_vs, net_l) = lenet(LeNetDropout::Fc);
    let mut sgd = nn::sgd(0.9, 0.0, 5e-4, false)
        .build(&lenet_vs, 0.01)
        .expect("SGD builds on a fresh VarStore");
    move || {
        let loss = net_l
            .forward_t(&images, true)
            .cross_entropy_for_logits(&labels);
        sgd.backward_step(&loss);
    }
}

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let (x, y) = co2_points();
    // Forward, then backward for the weight gradients and the input gradients (2 x forward).
    let flop = 3.0 * 2.0 * forward_macs(&co2_spec()) * N as f64;
    let mut g = Report::group(c, "train", 5);

    // The trainer's Adam (one fused pass per parameter on the CPU) ...
    report.bench(
        &mut g,
        "train",
        "adam_step_co2_n272",
        Some(flop),
        None,
        co2_adam_step(),
    );
    // ... and libtorch's Adam (tch's nn::adam), the same update in about ten passes.
    let (vs, net) = co2_net();
    let mut opt = nn::adam(0.9, 0.999, 1e-6)
        .build(&vs, 1e-4)
        .expect("Adam builds on a fresh VarStore");
    report.bench(
        &mut g,
        "train",
        "adam_step_co2_n272_libtorch_adam",
        Some(flop),
        None,
        || opt.backward_step(&half_mse(&net.forward_t(&x, true), &y)),
    );

    let (vs, net) = co2_net();
    let spec = TrainSpec {
        iterations: STEPS,
        batch_size: None,
        lr: 1e-4,
        schedule: LrSchedule::Constant,
        optimizer: Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
        },
        weight_decay: 1e-6,
        seed: 1,
        log_every: STEPS,
    };
    let (prefix, head) = lenet_macs();
    report.bench(
        &mut g,
        "train",
        "sgd_step_lenet_b64",
        Some(3.0 * 2.0 * (prefix + head) * 64.0),
        None,
        lenet_sgd_step(),
    );

    report.bench(
        &mut g,
        "train",
        "train_regression_20_steps_co2_n272",
        Some(flop * STEPS as f64),
        None,
        || {
            train_regression(&vs, &net, &x, &y, &spec, &mut Silent).expect("training runs");
        },
    );
    g.finish();
}
