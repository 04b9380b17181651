//! The Rust side of the paired rounds of `cargo xtask bench --compare`: a server that runs one
//! named workload a given number of times per request and answers with each call's seconds.
//! xtask alternates its requests with those to `bench/pytorch_reference.py --serve`, so both
//! sides are timed minutes apart at most by seconds, on the same machine state.
//!
//! Protocol (one line each, on stdin / stdout; everything else goes to stderr):
//! - on start: `ready\t<name>,<name>,...`;
//! - request `<name> <calls>`, answer `<name>\t<seconds> <seconds> ...` (one per call);
//! - a bad request gets `error\t<why>`; end of input ends the server.

use std::io::{BufRead, Write};
use std::time::Instant;

use mcd_models::mc::mc_samples;

use super::common::{co2_net, mc_config, mc_inputs, mc_passes};
use super::train_step::{co2_adam_step, lenet_sgd_step};

/// Serves the workloads until stdin ends.
pub fn serve() {
    let t = mc_passes();
    let (_vs, net) = co2_net();
    let x = mc_inputs();
    let cfg = mc_config(1 << 30);
    let mut workloads: Vec<(String, Box<dyn FnMut()>)> = vec![
        ("train/adam_step_co2_n272".into(), Box::new(co2_adam_step())),
        (
            "train/sgd_step_lenet_b64".into(),
            Box::new(lenet_sgd_step()),
        ),
        (
            format!("mc/mc_samples_1GiB_T{t}"),
            Box::new(move || {
                let _ = mc_samples(&net, &x, &cfg);
            }),
        ),
    ];
    let names: Vec<&str> = workloads.iter().map(|(n, _)| n.as_str()).collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready\t{}", names.join(","));
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match parse(&line) {
            Ok((name, calls)) => match workloads.iter_mut().find(|(n, _)| n == name) {
                Some((_, f)) => {
                    let times: Vec<String> = (0..calls)
                        .map(|_| {
                            let start = Instant::now();
                            f();
                            format!("{:e}", start.elapsed().as_secs_f64())
                        })
                        .collect();
                    format!("{name}\t{}", times.join(" "))
                }
                None => format!("error\tunknown workload `{name}`"),
            },
            Err(why) => format!("error\t{why}"),
        };
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
}

/// `<name> <calls>` with calls >= 1.
fn parse(line: &str) -> Result<(&str, usize), String> {
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().map(str::parse::<usize>),
        words.next(),
    ) {
        (Some(name), Some(Ok(calls)), None) if calls > 0 => Ok((name, calls)),
        _ => Err(format!("expected `<workload> <calls>`, got `{line}`")),
    }
}
