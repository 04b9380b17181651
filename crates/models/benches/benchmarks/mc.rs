//! MC prediction on the paper's CO2 net, T = 100 passes over 1000 inputs: `mc_samples` with a
//! large (capped to 16 MiB on the CPU) and a small (4 MiB) memory budget; the same plan with
//! every pass through the plain matmuls (`repeated_passes`, without the shared first product
//! of `mcd_models::mlp`); all T passes in one forward (uncapped, as `mc_samples` did before
//! its CPU cap); and the plain loop of `forward_t(x, true)` that PyTorch code would write.
//! GFLOP/s count the dense net's multiply-adds, also where the shared product skips some.

use criterion::Criterion;
use mcd_models::mc::{chunk_plan, effective_budget, mc_samples, repeated_passes};
use mcd_models::StochasticModel;
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

use super::common::{
    co2_net, co2_spec, forward_macs, mc_config, mc_inputs, mc_passes, Report, MC_INPUTS, MC_SEED,
};

/// Inputs.
const N: usize = MC_INPUTS;

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let t = mc_passes();
    let (_vs, net) = co2_net();
    let x = mc_inputs();
    let flop = 2.0 * forward_macs(&co2_spec()) * (t * N) as f64;
    let mut g = Report::group(c, "mc", 20);
    for (label, budget) in [("1GiB", 1usize << 30), ("4MiB", 4 << 20)] {
        let id = format!("mc_samples_{label}_T{t}");
        // mc_samples caps CPU activations at 16 MiB (plus the net's scratch), so 1 GiB plans
        // like 20 MiB.
        let plan = chunk_plan(&net, N, t, effective_budget(&net, Device::Cpu, budget));
        println!("mc/{id}: (rows, passes) per forward = {plan:?}");
        let cfg = mc_config(budget);
        report.bench(&mut g, "mc", &id, Some(flop), None, || {
            let _ = mc_samples(&net, &x, &cfg);
        });
    }
    // mc_samples' plan at 1 GiB with every pass through the plain matmuls.
    let budget = effective_budget(&net, Device::Cpu, 1 << 30);
    let (rows, per_forward) = chunk_plan(&net, N, t, budget);
    report.bench(
        &mut g,
        "mc",
        &format!("repeated_passes_1GiB_T{t}"),
        Some(flop),
        None,
        || {
            tch::no_grad(|| {
                net.reseed(MC_SEED);
                let out = Tensor::empty([t as i64, N as i64, 1], (Kind::Float, Device::Cpu));
                for start in (0..N).step_by(rows) {
                    let len = rows.min(N - start) as i64;
                    let prefix = net.deterministic_prefix(&x.narrow(0, start as i64, len));
                    repeated_passes(&net, &prefix, t, per_forward, &mut |done, k, y| {
                        out.narrow(0, done as i64, k as i64)
                            .narrow(1, start as i64, len)
                            .copy_(&y.view([k as i64, len, 1]));
                    });
                }
            })
        },
    );
    // All T passes in one forward of T x N rows (what a big budget gave before the CPU cap).
    report.bench(
        &mut g,
        "mc",
        &format!("batched_all_T{t}"),
        Some(flop),
        None,
        || {
            tch::no_grad(|| {
                let prefix = net.deterministic_prefix(&x);
                let batch = prefix.repeat([t as i64, 1]);
                let _ = net
                    .forward_from_prefix_t(&batch, true)
                    .view([t as i64, N as i64, -1]);
            })
        },
    );
    // The plain way: forward_t(x, true) T times (no prefix reuse), as PyTorch code would loop.
    report.bench(
        &mut g,
        "mc",
        &format!("forward_t_loop_T{t}"),
        Some(flop),
        None,
        || {
            tch::no_grad(|| {
                let ys: Vec<Tensor> = (0..t).map(|_| net.forward_t(&x, true)).collect();
                let _ = Tensor::stack(&ys, 0);
            })
        },
    );
    g.finish();
}
