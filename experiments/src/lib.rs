//! Experiment driver: typed configs, one module per study, result folders and progress display.
//! Data flows one way: config -> data -> model -> train -> predict -> evaluate -> report.

pub mod cache;
pub mod config;
pub mod curves;
pub mod interrupt;
pub mod methods;
pub mod output;
pub mod progress;
pub mod studies;
pub mod tasks;
pub mod yaml;

use std::path::PathBuf;

use tch::Device;

/// What a study does: everything, or one side of a run split into tasks (`tasks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Train (or load cached weights), predict, evaluate, write the results.
    Run,
    /// A task: train into the cache (UCI: compute its splits into the resume cache), no results.
    TrainOnly,
    /// Collect: everything must come from the cache; nothing is trained.
    CachedOnly,
}

/// Process-wide settings from the command line.
#[derive(Debug, Clone)]
pub struct Context {
    pub device: Device,
    /// Total CPU threads this process may use.
    pub threads: usize,
    /// Ignore cached weights and train again.
    pub retrain: bool,
    pub mode: Mode,
    pub display: progress::Display,
    /// Where trained weights are cached, keyed by the resolved config.
    pub cache_dir: PathBuf,
}

/// Device names accepted by `--device`.
pub fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err("--device cuda: no CUDA device is available (this libtorch may be a CPU build); use cpu or auto".into())
            }
        }
        "auto" => Ok(Device::cuda_if_available()),
        other => Err(format!("--device `{other}`: expected cpu, cuda or auto")),
    }
}
