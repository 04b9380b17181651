//! How training progress is shown: indicatif bars on a terminal, plain log lines otherwise.
//! The trainer only reports numbers through `mcd_trainer::ProgressSink`.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mcd_trainer::ProgressSink;

/// Shared display for all runs of one experiment.
#[derive(Debug, Clone)]
pub struct Display {
    multi: Option<MultiProgress>,
}

impl Display {
    /// Bars when stderr is a terminal (and `plain` is false), log lines otherwise.
    pub fn new(plain: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && !plain;
        Self {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A sink for one training run labelled `label`.
    pub fn sink(&self, label: &str) -> Box<dyn ProgressSink + Send> {
        match &self.multi {
            Some(m) => {
                let bar = m.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>14} [{bar:30}] {pos}/{len} it  {per_sec}  eta {eta}  {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(label.to_string());
                Box::new(BarSink { bar })
            }
            None => Box::new(LineSink {
                label: label.to_string(),
                total: 0,
                started: Instant::now(),
                next_pct: 0,
            }),
        }
    }
}

struct BarSink {
    bar: ProgressBar,
}

impl ProgressSink for BarSink {
    fn start(&mut self, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.reset_eta();
    }
    fn step(&mut self, iteration: usize, loss: f64, lr: f64) {
        self.bar.set_position(iteration as u64 + 1);
        self.bar.set_message(format!("loss {loss:.4}  lr {lr:.2e}"));
    }
    fn finish(&mut self) {
        self.bar.finish();
    }
}

struct LineSink {
    label: String,
    total: usize,
    started: Instant,
    next_pct: usize,
}

impl ProgressSink for LineSink {
    fn start(&mut self, total: usize) {
        self.total = total.max(1);
        self.started = Instant::now();
        self.next_pct = 0;
    }
    fn step(&mut self, iteration: usize, loss: f64, lr: f64) {
        let done = iteration + 1;
        let pct = done * 100 / self.total;
        if pct >= self.next_pct {
            let secs = self.started.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(1e-9);
            let eta = (self.total - done) as f64 / rate.max(1e-9);
            eprintln!(
                "[{}] {done}/{} it ({pct}%)  loss {loss:.4}  lr {lr:.2e}  {rate:.0} it/s  eta {eta:.0}s",
                self.label, self.total
            );
            self.next_pct = pct + 10;
        }
    }
    fn finish(&mut self) {
        eprintln!(
            "[{}] done in {:.1}s",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
    }
}
