//! Benchmarks of MC prediction and dropout masks (`cargo xtask bench`, or `cargo xtask bench
//! --compare` to run `bench/pytorch_reference.py` on the same workloads and print ratios).
//!
//! Besides criterion's report, every benchmark keeps criterion's own per-iteration sample times
//! and a summary table (median, GFLOP/s, share of a plain matmul's GFLOP/s) is printed at the
//! end; with `MCD_BENCH_OUT=DIR` it is also written to `DIR/mcd-models.tsv`.

mod benchmarks;

use criterion::Criterion;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut report = benchmarks::common::Report::new("mcd-models");
    benchmarks::common::bench_matmul(&mut c, &mut report);
    benchmarks::mc::bench(&mut c, &mut report);
    benchmarks::dropout::bench(&mut c, &mut report);
    benchmarks::lenet::bench(&mut c, &mut report);
    benchmarks::pool::bench(&mut c, &mut report);
    benchmarks::gp::bench(&mut c, &mut report);
    c.final_summary();
    report.finish();
}
