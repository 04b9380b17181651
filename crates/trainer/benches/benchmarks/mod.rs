// The report helpers and the CO2 net are shared with the mcd-models benches.
#[path = "../../../models/benches/benchmarks/common.rs"]
pub mod common;
pub mod paired;
pub mod stacked;
pub mod train_step;
