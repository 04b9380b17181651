//! MC prediction on the paper's CO2 net, T = 100 passes over 1000 inputs: one pass per forward,
//! all passes in one forward, and chunks capped by a memory budget.

use criterion::Criterion;
use mcd_models::mc::{chunk_plan, mc_samples, McConfig};
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

use super::common::{co2_net, co2_spec, forward_macs, Report};

/// Inputs.
pub const N: usize = 1000;

/// Passes T: 100, or `MCD_BENCH_T` for a quicker run.
pub fn passes() -> usize {
    std::env::var("MCD_BENCH_T")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let t = passes();
    let (_vs, net) = co2_net();
    let x = Tensor::linspace(-2.0, 3.5, N as i64, (Kind::Float, Device::Cpu)).view([N as i64, 1]);
    let flop = 2.0 * forward_macs(&co2_spec()) * (t * N) as f64;
    // Activations of one input row in one pass as chunk_plan counts them (3 x widest x f32).
    let row_bytes = 1024 * 4 * 3;
    let mut budgets = vec![
        (format!("loop_T{t}"), N * row_bytes),
        (format!("batched_T{t}"), usize::MAX / 2),
    ];
    for mib in [256usize, 64, 16] {
        budgets.push((format!("chunked_{mib}MiB_T{t}"), mib << 20));
    }
    let mut g = Report::group(c, "mc", 20);
    for (id, budget) in budgets {
        let plan = chunk_plan(&net, N, t, budget);
        println!("mc/{id}: memory budget {budget} B -> chunk plan (rows, passes) = {plan:?}");
        let cfg = McConfig {
            samples: t,
            memory_budget_bytes: budget,
            seed: 7,
        };
        report.bench(&mut g, "mc", &id, Some(flop), None, || {
            let _ = mc_samples(&net, &x, &cfg);
        });
    }
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
