//! Benchmarks of training steps (`cargo xtask bench`, or `cargo xtask bench --compare` to run
//! `bench/pytorch_reference.py` on the same workloads and print ratios). With
//! `MCD_BENCH_OUT=DIR` the summary is also written to `DIR/mcd-trainer.tsv`. With `--serve`
//! it runs no criterion benches but serves the paired rounds of `--compare`
//! (`benchmarks::paired`).

mod benchmarks;

use criterion::Criterion;

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        benchmarks::paired::serve();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut report = benchmarks::common::Report::new("mcd-trainer");
    benchmarks::common::bench_matmul(&mut c, &mut report);
    benchmarks::train_step::bench(&mut c, &mut report);
    benchmarks::stacked::bench(&mut c, &mut report);
    c.final_summary();
    report.finish();
}
