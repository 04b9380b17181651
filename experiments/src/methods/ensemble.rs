//! Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017): M nets from different seeds,
//! each with a mean and a variance head (variance = softplus + 1e-6), each trained on the
//! Gaussian negative log-likelihood; the predictive is the uniform mixture of the members'
//! Gaussians: `mu* = mean_m mu_m`, `sigma*^2 = mean_m (sigma_m^2 + mu_m^2) - mu*^2`, which is
//! epistemic (variance of the members' means) + aleatoric (mean of the members' variances)
//! (`mcd_evaluation::regression::mixture_predictive`, shared with heteroscedastic MC dropout).
//!
//! The members are trained as one [`StackedMlp`] (`[M, in, out]` weights, one batched forward
//! and backward per step; its variables live in the run's `VarStore`, so the one training loop
//! `mcd_trainer::train` and the weight cache handle them like any net). The stack's loss is the
//! sum of the members' mean NLLs, so each member's gradient is its own and a member trains to
//! the weights it reaches alone (bit for bit on one thread, tested). All members see the same
//! mini-batch order (the loop's); they differ by their seeds, which the paper found to be
//! enough. Member m's seed is the m-th fork of a generator seeded from the run seed.
//!
//! Members have no dropout (validation refuses `model.dropout` other than 0), so the net is
//! deterministic: its whole forward is the [`StochasticModel`] prefix, computed once per input,
//! and every "pass" repeats it. The predictive reads one pass (each member once: M Gaussians).
//! There is no dropout to switch off, so the co2 "standard dropout" row does not apply (co2
//! draws it from MC dropout runs only); an ensemble's `<run>_standard` prediction column is its
//! first member alone. No tau either: the noise is what the variance heads learn, and
//! `precision` only sets the weight decay, as for heteroscedastic MC dropout.

use std::sync::Mutex;

use anyhow::Result;
use mcd_models::lenet::LeNetSpec;
use mcd_models::mlp::MlpSpec;
use mcd_models::rng::SeededRng;
use mcd_models::stacked::{Member, StackedMlp};
use mcd_models::StochasticModel;
use mcd_trainer::{Objective, TrainError};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::{
    gaussian_mixture_log_likelihood, Method, MethodRef, Passes, RegressionPredictive, Use,
};

/// The method (`model.method: ensemble`) with M members (`model.members`); co2 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ensemble {
    pub members: usize,
}

/// The variance heads' floor: variance = softplus(raw) + `MIN_VARIANCE` (the paper's 1e-6).
pub const MIN_VARIANCE: f64 = 1e-6;

impl Ensemble {
    /// The registered default: 5 members, as in the paper.
    pub const DEFAULT: Ensemble = Ensemble { members: 5 };

    /// The method with `members` members (>= 1, as validation checks), as configs hold it.
    /// Each distinct M is allocated once for the life of the process.
    pub fn with_members(members: usize) -> MethodRef {
        assert!(
            members >= 1,
            "validation: an ensemble needs at least one member"
        );
        if members == Self::DEFAULT.members {
            return MethodRef(&Self::DEFAULT);
        }
        static MADE: Mutex<Vec<&'static Ensemble>> = Mutex::new(Vec::new());
        let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
        let e = match made.iter().find(|e| e.members == members) {
            Some(e) => *e,
            None => {
                let e: &'static Ensemble = Box::leak(Box::new(Ensemble { members }));
                made.push(e);
                e
            }
        };
        MethodRef(e)
    }

    /// The members' seeds: forks of a generator seeded from the run seed.
    pub fn member_seeds(&self, seed: u64) -> Vec<u64> {
        let mut rng = SeededRng::new(seed ^ 0x00E5_E4B1_E5EE_D5E5_u64);
        (0..self.members).map(|_| rng.fork()).collect()
    }

    /// One pass's members as M Gaussians over the N inputs: means [M, N] (member-major) and
    /// variances (the same layout).
    fn components(&self, passes: &Passes) -> Result<(Vec<f32>, Vec<f64>)> {
        let m = self.members;
        anyhow::ensure!(
            passes.out == 2 * m && passes.t >= 1,
            "an ensemble of {m} gives {} outputs per input, got {} (and {} passes)",
            2 * m,
            passes.out,
            passes.t
        );
        // Every pass of the deterministic net is the same; the first is the M members.
        let first = passes.data[..passes.n * passes.out].to_vec();
        let one = Passes {
            data: first,
            t: 1,
            n: passes.n,
            out: passes.out,
        };
        let means = (0..m).flat_map(|j| one.output(2 * j)).collect();
        let vars = (0..m)
            .flat_map(|j| one.output(2 * j + 1))
            .map(f64::from)
            .collect();
        Ok((means, vars))
    }
}

/// M member nets as one [`StackedMlp`] over the same inputs: outputs [N, 2M], member m's mean
/// at column 2m and its variance (softplus + 1e-6) at 2m + 1.
#[derive(Debug)]
pub struct EnsembleNet {
    stack: StackedMlp,
}

impl EnsembleNet {
    /// Members of shape `spec` (one target: `output_dim` 1 is the member's mean; the variance
    /// head is added) with the given seeds, no dropout, variables in `vs`.
    pub fn new(vs: &nn::Path, spec: &MlpSpec, seeds: &[u64]) -> Self {
        let member = MlpSpec {
            output_dim: 2,
            dropout: 0.0,
            input_dropout: 0.0,
            ..spec.clone()
        };
        let members: Vec<Member> = seeds
            .iter()
            .map(|&seed| Member {
                dropout: 0.0,
                input_dropout: 0.0,
                seed,
            })
            .collect();
        Self {
            stack: StackedMlp::new_in(vs, &member, &members),
        }
    }

    /// The stacked members (weights per member: `StackedMlp::member_layers`).
    pub fn stack(&self) -> &StackedMlp {
        &self.stack
    }
}

impl ModuleT for EnsembleNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_from_prefix_t(&self.deterministic_prefix(xs), train)
    }
}

impl StochasticModel for EnsembleNet {
    /// The whole net: members have no dropout. Inputs `[N, d]` are shared by every member;
    /// `[M, N, d]` give member m slice m (adversarial training's own examples per member).
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        let m = self.stack.len() as i64;
        let per_member = if xs.dim() == 3 {
            xs.shallow_clone()
        } else {
            let (n, d) = (xs.size()[0], xs.size()[1]);
            xs.unsqueeze(0).expand([m, n, d], false)
        };
        let n = per_member.size()[1];
        let out = self.stack.forward_t(&per_member, false);
        let mean = out.narrow(2, 0, 1);
        let var = out.narrow(2, 1, 1).softplus() + MIN_VARIANCE;
        Tensor::cat(&[mean, var], 2)
            .permute([1, 0, 2])
            .reshape([n, 2 * m])
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, _train: bool) -> Tensor {
        prefix.shallow_clone()
    }

    fn reseed(&self, _seed: u64) {}

    fn output_dim(&self) -> usize {
        2 * self.stack.len()
    }
}

/// The members' Gaussian NLLs: outputs [N, 2M] as [`EnsembleNet`] lays them out, targets
/// [N, 1]; per member `mean over points of 1/2 ln var + 1/2 (y - mu)^2 / var` (constant
/// dropped), summed over members (so each member's gradient is its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct EnsembleNll;

impl Objective for EnsembleNll {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        if y.dim() != 2 || y.size()[1] != 1 || y.size()[0] != x.size()[0] {
            return Err(TrainError::Shape {
                x: x.size(),
                y: y.size(),
            });
        }
        Ok(())
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        let n = out.size()[0];
        let pairs = out.view([n, -1, 2]);
        let mu = pairs.select(2, 0);
        let var = pairs.select(2, 1);
        let nll = var.log() * 0.5 + (y - mu).square() / var * 0.5;
        nll.mean_dim(0, false, Kind::Float).sum(Kind::Float)
    }
}

impl Method for Ensemble {
    fn name(&self) -> &'static str {
        "ensemble"
    }

    fn label(&self) -> &'static str {
        "deep ensemble"
    }

    fn serves(&self, u: Use) -> bool {
        // The uci study trains its members stacked (`studies::uci::methods`).
        matches!(
            u,
            Use::Regression | Use::StackedRegression | Use::Classification
        )
    }

    /// M LeNets without dropout (`methods::classification::LeNetEnsemble`).
    fn classifier(
        &self,
        vs: &nn::Path,
        spec: &LeNetSpec,
        seed: u64,
    ) -> Box<dyn super::classification::Classifier> {
        Box::new(super::classification::LeNetEnsemble::new(
            vs,
            spec,
            &self.member_seeds(seed),
        ))
    }

    /// A mean and a variance per member.
    fn outputs_per_target(&self) -> usize {
        2 * self.members
    }

    fn regression_net(&self, vs: &nn::Path, spec: &MlpSpec, seed: u64) -> Box<dyn StochasticModel> {
        assert_eq!(
            spec.output_dim,
            2 * self.members,
            "an ensemble regresses one target"
        );
        let member = MlpSpec {
            output_dim: 1,
            ..spec.clone()
        };
        Box::new(EnsembleNet::new(vs, &member, &self.member_seeds(seed)))
    }

    fn regression_objective(&self) -> Box<dyn Objective> {
        Box::new(EnsembleNll)
    }

    fn independent_nets(&self) -> usize {
        self.members
    }

    /// The mixture's moments; `tau` is not used (the variance heads learn the noise).
    fn regression_predictive(&self, passes: &Passes, _tau: f64) -> Result<RegressionPredictive> {
        let (means, vars) = self.components(passes)?;
        RegressionPredictive::gaussian_mixture(&means, &vars, self.members, passes.n)
    }

    fn regression_log_likelihood(
        &self,
        passes: &Passes,
        targets: &[f32],
        _tau: f64,
    ) -> Result<f64> {
        let (means, vars) = self.components(passes)?;
        gaussian_mixture_log_likelihood(&means, &vars, self.members, passes.n, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::Regressor;
    use mcd_models::mc::McConfig;
    use mcd_models::mlp::{Activation, InitScheme};
    use mcd_trainer::{LrSchedule, Optimizer, Silent, TrainReport, TrainSpec};
    use tch::Device;

    fn spec(hidden: Vec<usize>) -> MlpSpec {
        MlpSpec {
            input_dim: 1,
            hidden,
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.0,
            input_dropout: 0.0,
            init: InitScheme::Torch,
            first_layer: None,
        }
    }

    fn adam(iterations: usize, batch_size: Option<usize>) -> TrainSpec {
        TrainSpec {
            iterations,
            batch_size,
            lr: 0.01,
            schedule: LrSchedule::Constant,
            optimizer: Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
            },
            weight_decay: 1e-4,
            seed: 5,
            log_every: 50,
        }
    }

    fn col(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).view([v.len() as i64, 1])
    }

    #[test]
    fn the_mixture_variance_by_hand() {
        // Two members over two inputs, (mean, variance) per member and input:
        // input 0: (1, 1) and (3, 3); input 1: (-1, 0.5) and (-1, 1.5).
        let out = [1.0f32, 1.0, 3.0, 3.0, -1.0, 0.5, -1.0, 1.5];
        // Three identical passes (the net is deterministic): only one is read.
        let passes = Passes {
            data: out.repeat(3),
            t: 3,
            n: 2,
            out: 4,
        };
        let e = Ensemble { members: 2 };
        let p = e.regression_predictive(&passes, 7.0).unwrap();
        // mu* = 2, sigma*^2 = ((1 + 1) + (3 + 9)) / 2 - 4 = 3 (epistemic 1, aleatoric 2);
        // mu* = -1, sigma*^2 = ((0.5 + 1) + (1.5 + 1)) / 2 - 1 = 1 (epistemic 0, aleatoric 1).
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert_eq!(p.mean, vec![2.0, -1.0]);
        assert!(close(p.sd[0] * p.sd[0], 3.0) && close(p.sd[1] * p.sd[1], 1.0));
        assert!(close(p.epistemic_sd[0], 1.0) && close(p.epistemic_sd[1], 0.0));
        assert!(close(p.aleatoric_sd[0], 2f64.sqrt()) && close(p.aleatoric_sd[1], 1.0));
        assert_eq!(p.tau, None);
        // The log-likelihood is the mixture's density: y = 2 at input 0, y = -1 at input 1.
        let ll = e
            .regression_log_likelihood(&passes, &[2.0, -1.0], 7.0)
            .unwrap();
        let n = |y: f64, mu: f64, v: f64| {
            (-(y - mu).powi(2) / (2.0 * v)).exp() / (std::f64::consts::TAU * v).sqrt()
        };
        let want = (0.5 * (n(2.0, 1.0, 1.0) + n(2.0, 3.0, 3.0))).ln() / 2.0
            + (0.5 * (n(-1.0, -1.0, 0.5) + n(-1.0, -1.0, 1.5))).ln() / 2.0;
        assert!(close(ll, want), "{ll} vs {want}");
        // The wrong number of outputs is an error, not a misread.
        assert!(Ensemble { members: 3 }
            .regression_predictive(&passes, 7.0)
            .is_err());
    }

    #[test]
    fn the_loss_is_the_members_gaussian_nll_summed() {
        // Member 0 (mu 1, var 1), member 1 (mu 0, var 2); targets 0 and 2.
        let out = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 2.0, 1.0, 1.0, 0.0, 2.0]).view([2, 4]);
        let y = col(&[0.0, 2.0]);
        let loss = f64::try_from(EnsembleNll.loss(&out, &y)).unwrap();
        // Member 0: (1/2 + 1/2) / 2; member 1: (1/2 ln 2 + (1/2 ln 2 + 1/2 * 4 / 2)) / 2.
        let want = 0.5 + (0.5 * 2f64.ln() + 0.5);
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    /// A member of the stack trains to the weights of the same net (same seed) trained alone,
    /// bit for bit (one thread), with mini-batches.
    /// Trains an ensemble of `seeds.len()` members on sin(3x), with adversarial training when
    /// `adversarial` (a step of 0.05 in x) is set.
    fn train_members(seeds: &[u64], adversarial: Option<f64>) -> (EnsembleNet, TrainReport) {
        let x: Vec<f32> = (0..40).map(|i| -1.0 + i as f32 / 20.0).collect();
        let y: Vec<f32> = x.iter().map(|&x| (3.0 * x).sin()).collect();
        let vs = nn::VarStore::new(Device::Cpu);
        let net = EnsembleNet::new(&vs.root(), &spec(vec![16, 16]), seeds);
        let adv =
            adversarial.map(|eps| mcd_trainer::Adversarial::new(&EnsembleNll, &[eps], seeds.len()));
        let objective: &dyn Objective = match &adv {
            Some(a) => a,
            None => &EnsembleNll,
        };
        let out = mcd_trainer::train(
            &vs,
            &net,
            &col(&x),
            &col(&y),
            &adam(60, Some(16)),
            objective,
            &mut Silent,
            &mut |_| None,
        )
        .unwrap();
        (net, out)
    }

    /// A member trained in the stack ends with the weights it reaches alone, bit for bit; with
    /// adversarial training too, which shows that each member is perturbed by its own gradient
    /// (a shared perturbation would follow the sum of the members' gradients).
    #[test]
    fn a_member_in_the_stack_trains_as_alone() {
        tch::set_num_threads(1);
        let seeds = [21u64, 22, 23];
        for adversarial in [None, Some(0.05)] {
            let (stack, report) = train_members(&seeds, adversarial);
            let (first, last) = (report.losses[0].1, report.losses.last().unwrap().1);
            assert!(last < first, "{adversarial:?}: loss {first} -> {last}");
            for (i, &seed) in seeds.iter().enumerate() {
                let (alone, _) = train_members(&[seed], adversarial);
                let ours = stack.stack().member_layers(i);
                for (l, ((wa, ba), (ws, bs))) in
                    alone.stack().member_layers(0).iter().zip(&ours).enumerate()
                {
                    assert!(
                        wa.equal(ws) && ba.equal(bs),
                        "{adversarial:?}: member {i}, layer {l}"
                    );
                }
            }
        }
        // The adversarial term changes the training: other weights than without it.
        let (plain, _) = train_members(&seeds[..1], None);
        let (adv, _) = train_members(&seeds[..1], Some(0.05));
        let (wp, _) = &plain.stack().member_layers(0)[0];
        let (wa, _) = &adv.stack().member_layers(0)[0];
        assert!(
            !wp.equal(wa),
            "adversarial training left the weights unchanged"
        );
    }

    /// With few 1-D training points, the members agree on them and disagree away from them.
    #[test]
    fn the_sd_grows_away_from_the_training_data() {
        tch::set_num_threads(1);
        let x: Vec<f32> = (0..20).map(|i| -1.0 + i as f32 / 9.5).collect();
        // y = sin(2x) + noise of sd 0.1 (noise keeps the variance heads away from 0).
        let mut rng = SeededRng::new(4);
        let y: Vec<f32> = x
            .iter()
            .map(|&x| (2.0 * x).sin() + 0.1 * rng.next_normal() as f32)
            .collect();
        let method = Ensemble::with_members(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Regressor::new(method, &vs.root(), &spec(vec![32, 32]), 9, 1.0);
        assert_eq!(
            model.spec.output_dim, 10,
            "a mean and a variance per member"
        );
        model
            .train(
                &vs,
                &col(&x),
                &col(&y),
                &TrainSpec {
                    lr: 0.003,
                    ..adam(1000, None)
                },
                0,
                &mut Silent,
            )
            .unwrap();
        let probe = [-0.5f32, 0.0, 0.5, -4.0, 4.0];
        let mc = McConfig {
            samples: 2,
            memory_budget_bytes: 1 << 20,
            seed: 1,
        };
        let passes = model.passes(&col(&probe), &mc).unwrap();
        let p = method.regression_predictive(&passes, 1.0).unwrap();
        let near = (p.sd[0] + p.sd[1] + p.sd[2]) / 3.0;
        for (i, x) in [(3, -4.0), (4, 4.0)] {
            assert!(
                p.sd[i] > 3.0 * near,
                "sd {:.3} at x = {x}, {near:.3} on the data",
                p.sd[i]
            );
            assert!(p.epistemic_sd[i] > p.epistemic_sd[1]);
        }
        for (m, x) in p.mean.iter().take(3).zip(probe) {
            assert!(
                (m - (2.0 * f64::from(x)).sin()).abs() < 0.2,
                "mean {m:.3} at x = {x}"
            );
        }
    }

    #[test]
    fn members_have_distinct_seeds_from_the_run_seed() {
        let e = Ensemble { members: 4 };
        let s = e.member_seeds(3);
        assert_eq!(s, e.member_seeds(3));
        assert_ne!(s, e.member_seeds(4));
        let mut d = s.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 4);
        assert_eq!(Ensemble::with_members(3).name(), "ensemble");
        assert!(std::ptr::eq(
            Ensemble::with_members(3).0 as *const dyn Method as *const (),
            Ensemble::with_members(3).0 as *const dyn Method as *const ()
        ));
    }
}
