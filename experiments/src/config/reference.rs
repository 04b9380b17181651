//! Every config key: its type, default, allowed values, which studies read it and what it means.
//! This table is the reference users read (`mcd keys`, `docs/config.md`, generated from it) and
//! the rule validation applies: a key that the run's study does not read is refused
//! ([`unread_key`]). Tests check it against the serde schema in `raw.rs` both ways.

use super::StudyKind::{self, ActiveLearning, Co2, ConcreteSynthetic, MnistRotated, Uci};
use crate::yaml::Value;

/// One key of the schema.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// Dotted path; `[]` marks the items of a list (`variants[].name`).
    pub key: &'static str,
    pub ty: &'static str,
    /// What applies when the key is absent ("required" when it must be given).
    pub default: &'static str,
    pub allowed: &'static str,
    /// Studies that read it; any other study refuses it.
    pub studies: &'static [StudyKind],
    pub meaning: &'static str,
    /// A valid value, for the tests that hold this table against the schema.
    pub example: &'static str,
}

const ALL: &[StudyKind] = &[Co2, MnistRotated, Uci, ConcreteSynthetic, ActiveLearning];

/// The studies that read data (concrete_synthetic draws its own from the seed).
const READ_DATA: &[StudyKind] = &[Co2, MnistRotated, Uci, ActiveLearning];

macro_rules! key {
    ($key:literal, $ty:literal, $default:literal, $allowed:literal, $studies:expr, $example:literal, $meaning:literal) => {
        KeyDoc {
            key: $key,
            ty: $ty,
            default: $default,
            allowed: $allowed,
            studies: $studies,
            meaning: $meaning,
            example: $example,
        }
    };
}

/// The schema, in the order of `docs/config.md`.
pub const KEYS: &[KeyDoc] = &[
    key!("study", "word", "required", "`co2`, `mnist_rotated`, `uci`, `concrete_synthetic`, `active_learning`", ALL, "co2",
        "Which study the file drives: CO2 extrapolation (paper Fig. 2, 3), rotated MNIST (Fig. 4, calibration, out-of-distribution), the UCI benchmark (Table 1), concrete dropout's synthetic study (Gal, Hron & Kendall 2017: learnt drop rates, aleatoric and epistemic sd against the data size N), active learning on MNIST (Gal, Islam & Ghahramani 2017: BALD, max entropy, variation ratios, mean STD, random)."),
    key!("name", "text", "the file name without `.yaml`", "a folder name: not empty, no `/` or `\\`, not starting with `.`", ALL, "my_run",
        "Results go to `results/<name>/`."),
    key!("seed", "integer", "0", ">= 0", ALL, "3",
        "Fixes weight init, dropout masks, mini-batch order and MC passes (`--seed` overrides it)."),
    key!("data", "section", "`{dir: data}`", "", READ_DATA, "{dir: data}",
        "Where the data come from (concrete_synthetic draws its data from `seed` and reads no files)."),
    key!("data.dir", "path", "`data` (without `data.csv`)", "an existing folder with a `SHA256SUMS` manifest; relative to where `mcd` runs; not with `data.csv`", READ_DATA, "data",
        "The vendored data folder; every file read is checked against its manifest."),
    key!("data.csv", "path", "none: the vendored data", "an existing CSV file with a header row; relative to where `mcd` runs", &[Co2, Uci], "examples/own_data.csv",
        "Your own regression table instead of the vendored data (co2: one feature, every row trains, the figure shows mean and sd against it; uci: the authors' protocol on your splits). Its sha256 is recorded in the result folder (`data.sha256`)."),
    key!("data.target", "text", "required with `data.csv`", "a column of the header", &[Co2, Uci], "y",
        "The column to predict; every cell a finite number."),
    key!("data.features", "list of texts", "every column but the target", "columns of the header (co2: exactly one)", &[Co2, Uci], "[x1, x2]",
        "Input columns; every cell a finite number."),
    key!("data.split", "section", "uci with `data.csv`: required", "`{test_fraction, count, seed}` or `{index_files: [{train, test}, ...]}`", &[Uci], "{test_fraction: 0.2}",
        "How the table is cut into (train, test) splits."),
    key!("data.split.test_fraction", "number", "required (random splits)", "(0, 1)", &[Uci], "0.2",
        "Share of rows held out for testing in each random split (rounded; at least one row)."),
    key!("data.split.count", "integer", "1", "1 to 1000", &[Uci], "5",
        "Number of random splits."),
    key!("data.split.seed", "integer", "0", ">= 0", &[Uci], "7",
        "Seed of the random splits (independent of `seed`)."),
    key!("data.split.index_files", "list of `{train: path, test: path}`", "none", "existing files of 0-based row indices (whitespace-separated); rows may not repeat or overlap", &[Uci], "[]",
        "One split per pair, as the vendored sets' `index_train_K.txt` / `index_test_K.txt`."),
    key!("model", "section", "required", "", ALL, "{hidden: [8], activation: relu, dropout: 0.1}",
        "The network."),
    key!("model.arch", "word", "`mlp`", "`mlp` (co2, uci, concrete_synthetic), `lenet` (mnist_rotated), `cnn` (active_learning: conv 32@4x4 - ReLU - conv 32@4x4 - ReLU - maxpool 2x2 - dropout - dense 128 - ReLU - dropout - dense 10)", ALL, "mlp",
        "Network family."),
    key!("model.method", "word", "`mc_dropout`", "`mc_dropout` (co2, mnist_rotated, uci, active_learning), `heteroscedastic` (co2), `concrete_dropout` (co2, concrete_synthetic: required there, mnist_rotated, uci), `ensemble` (co2, mnist_rotated, uci), `gaussian_dropout` (co2)", ALL, "mc_dropout",
        "The predictive method: `mc_dropout` predicts by T passes with dropout on, variance = the passes' variance + 1/tau; `heteroscedastic` (Kendall & Gal 2017) adds a log-variance output s trained on 1/2 exp(-s) (y - mean)^2 + 1/2 s, variance = epistemic (variance of the passes' means) + aleatoric (mean of the passes' exp(s)), with no separate tau term (`precision` only sets the weight decay); `concrete_dropout` (Gal, Hron & Kendall 2017) learns the drop rate p of every layer through a relaxed mask (`model.temperature`), from `model.dropout`, minimising 0.5 MSE + 0.5 sum over layers [l^2/(tau N) ||W||^2/(1-p) + 2/(tau N) K (p log p + (1-p) log(1-p))] (K the layer's input width; the optimiser's weight decay is 0), and predicts as MC dropout with the learnt rates; the learnt p per layer is logged and written to `tables/learned_<run>.csv`; `ensemble` (Lakshminarayanan et al. 2017) trains `model.members` nets from seeds derived from `seed`, without dropout (`model.dropout: 0`), each with a mean and a variance head (softplus + 1e-6) on the Gaussian NLL, as one stacked model, and predicts their mixture: variance = epistemic (variance of the members' means) + aleatoric (mean of their variances), no tau term; `gaussian_dropout` (Srivastava et al. 2014 §10, Kingma, Salimans & Welling 2015) multiplies every unit MC dropout would drop by noise ~ N(1, alpha), alpha = p/(1-p) (the Bernoulli mask's mean and variance), on 0.5 MSE from the `Mlp`'s initial weights, and predicts as MC dropout with the noise on. The concrete_synthetic study takes `concrete_dropout` only, on its own net: a mean and a log-variance head, each behind its own learnt rate, trained on 1/2 exp(-s) (y - mean)^2 + 1/2 s plus the same regulariser halved. On mnist_rotated, `ensemble` trains `model.members` LeNets without dropout on cross-entropy and predicts the mean of their softmax outputs (entropy, mutual information and variation ratio over members), and `concrete_dropout` learns p at every dropout position of the LeNet (`model.placement`) on cross-entropy + sum [wd/(1-p0) ||W||^2/(1-p) + 1/N K (p log p + (1-p) log(1-p))], K the units the mask drops (a convolution's: channels x height x width); the `methods` table puts the runs side by side. In the uci study, `concrete_dropout` replaces the grid over p by learnt rates (initial p 0.1; tau still chosen per split on the validation rows) and `ensemble` trains `model.members` nets per split on the Gaussian NLL without a grid (see `configs/uci_methods.yaml`); both train stacked. A study refuses a method it cannot use (mnist_rotated takes `mc_dropout`, `concrete_dropout` and `ensemble`; uci the same; active_learning `mc_dropout`)."),
    key!("model.temperature", "number", "0.1 (the authors')", "> 0; only with `model.method: concrete_dropout`", &[Co2, MnistRotated, ConcreteSynthetic, Uci], "0.1",
        "Temperature t of concrete dropout's relaxed mask z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t), u ~ U(0, 1); smaller is closer to a hard Bernoulli mask. The initial p of every layer is `model.dropout` (then (0, 1)); in the uci study, 0.1."),
    key!("model.members", "integer", "5 (with `model.method: ensemble`)", ">= 1; only with `model.method: ensemble`", &[Co2, MnistRotated, Uci], "3",
        "M, the nets of a deep ensemble (each trained on all the data from its own seed; prediction runs each once)."),
    key!("model.hidden", "list of integers", "co2, concrete_synthetic: required; uci: each data set's `n_hidden.txt` (`data.csv`: [50])", "widths >= 1; co2 and concrete_synthetic need at least one layer", &[Co2, Uci, ConcreteSynthetic], "[8, 8]",
        "Hidden layer widths of the MLP."),
    key!("model.activation", "word", "required", "`relu`, `tanh`, `sigmoid`", &[Co2, Uci, ConcreteSynthetic], "tanh",
        "Non-linearity after every hidden layer."),
    key!("model.placement", "word", "`fc`", "`fc` (dropout after FC 500: LeNet), `all` (also after each convolution: LeNet-all)", &[MnistRotated], "all",
        "Where LeNet drops units."),
    key!("model.dropout", "number", "required", "a drop probability in [0, 1); with `concrete_dropout` in (0, 1)", &[Co2, MnistRotated, ConcreteSynthetic, ActiveLearning], "0.1",
        "Drop probability after every hidden layer (uci grid-searches it: `uci.dropout_rates`); with `concrete_dropout` the initial p of every learnt rate after the input (concrete_synthetic: also of each head's)."),
    key!("model.input_dropout", "number", "0", "a drop probability in [0, 1)", &[Co2, ConcreteSynthetic], "0.0",
        "Drop probability on the inputs (uci drops inputs at the hidden rate, the authors' protocol); with `concrete_dropout` the initial p of a learnt rate on the inputs, 0: none (the authors' synthetic net has one, from 0.1)."),
    key!("model.init", "word", "`caffe_xavier`", "`caffe_xavier`, `torch`, `glorot_uniform`", &[Co2, Uci, ConcreteSynthetic], "torch",
        "Weight initialisation of the MLP (LeNet's is fixed: Caffe's Xavier)."),
    key!("model.first_layer_slope", "number", "none (`model.init` for every layer)", "> 0", &[Co2], "20",
        "First-layer units act(w (x - c)) with centres c spread evenly at random over the training inputs' range and |w| = slope x U(0.5, 1.5), random sign; `model.init` for the other layers."),
    key!("trainer", "section", "required", "", ALL, "{optimizer: adam, lr: 0.001}",
        "Training settings."),
    key!("trainer.iterations", "integer", "co2, concrete_synthetic: required; mnist_rotated: give this or `trainer.epochs`", ">= 1", &[Co2, MnistRotated, ConcreteSynthetic], "40",
        "Optimiser steps (concrete_synthetic: of every net, whatever its N)."),
    key!("trainer.epochs", "integer", "see `trainer.iterations`; active_learning: required", ">= 1", &[MnistRotated, ActiveLearning], "1",
        "Passes over the training images (steps = epochs x ceil(N / batch)); active_learning: of every round, over its training set (the authors' 50)."),
    key!("trainer.batch_size", "integer or `full`", "`full`", ">= 1, or `full` (every training point in each step)", ALL, "64",
        "Mini-batch size."),
    key!("trainer.optimizer", "word", "required", "`sgd`, `adam` (uci: `adam` only)", ALL, "adam",
        "Optimiser; weight decay is added to the gradient (`wd * w`)."),
    key!("trainer.lr", "number", "required", "> 0", ALL, "0.001",
        "Base learning rate."),
    key!("trainer.momentum", "number", "0.9", "[0, 1); sgd only", &[Co2, MnistRotated, ConcreteSynthetic, ActiveLearning], "0.9",
        "SGD (heavy-ball) momentum."),
    key!("trainer.beta1", "number", "0.9", "[0, 1); adam only", ALL, "0.9",
        "Adam's first-moment decay."),
    key!("trainer.beta2", "number", "0.999", "[0, 1); adam only", ALL, "0.999",
        "Adam's second-moment decay."),
    key!("trainer.schedule", "section", "`{kind: constant}`", "`{kind: constant}`, `{kind: inv, gamma, power}`, `{kind: cosine, final_fraction}`; uci: constant only", ALL, "{kind: constant}",
        "Learning-rate schedule."),
    key!("trainer.schedule.kind", "word", "`constant`", "`constant`, `inv`, `cosine`", ALL, "constant",
        "`inv` is Caffe's: lr (1 + gamma it)^(-power); `cosine` decays to lr x final_fraction at the last step."),
    key!("trainer.schedule.gamma", "number", "required with `inv`", ">= 0", &[Co2, MnistRotated, ConcreteSynthetic, ActiveLearning], "0.0001",
        "`inv` schedule's gamma."),
    key!("trainer.schedule.power", "number", "required with `inv`", ">= 0", &[Co2, MnistRotated, ConcreteSynthetic, ActiveLearning], "0.75",
        "`inv` schedule's power."),
    key!("trainer.schedule.final_fraction", "number", "required with `cosine`", "[0, 1]", &[Co2, MnistRotated, ConcreteSynthetic, ActiveLearning], "0.1",
        "`cosine` schedule's last learning rate as a fraction of `trainer.lr`."),
    key!("trainer.weight_decay", "number", "see `precision`", "co2: > 0 with `precision.length_scale`, >= 0 with `precision.tau`; mnist_rotated, active_learning: >= 0", &[Co2, MnistRotated, ActiveLearning], "1.0e-6",
        "L2 weight decay wd (gradient += wd * w); tau = (1 - p) l^2 / (2 N wd). uci derives it from each (p, tau); concrete_synthetic puts l^2 / (tau N) into its objective for each N."),
    key!("trainer.log_every", "integer", "100", ">= 1", &[Co2, MnistRotated, ConcreteSynthetic], "10",
        "Steps between loss reports (progress and the training curve); uci reports every 200 steps."),
    key!("trainer.dropout_warmup", "number", "0", "[0, 1); > 0 only with `model.method` mc_dropout or heteroscedastic and some dropout", &[Co2], "0.5",
        "Dropout warm-up (curriculum dropout): over this fraction of the steps every drop rate rises linearly from 0 to its configured value, then stays; the final objective, tau and the predictive are the configured rate's."),
    key!("trainer.adversarial", "number", "0", "[0, 1); > 0 only with `model.method: ensemble`", &[Co2], "0.01",
        "Deep ensembles' adversarial training (Lakshminarayanan et al. 2017, fast gradient sign): each step's loss is l(x) + l(x + eps sign(dl/dx)), each member with its own perturbation; eps per input is this fraction of the input's range over the training data (the paper: 0.01). 0: off."),
    key!("precision", "section", "`{}`", "", &[Co2, MnistRotated, Uci, ConcreteSynthetic], "{length_scale: 0.25}",
        "Model precision tau and prior length-scale l: give two of `trainer.weight_decay`, `precision.tau`, `precision.length_scale` (uci: `length_scale`, optionally `tau` to fix it; concrete_synthetic: `length_scale`, optionally `tau`, default 1)."),
    key!("precision.length_scale", "number", "see `precision`", "> 0", &[Co2, MnistRotated, Uci, ConcreteSynthetic], "0.25",
        "Prior length-scale l of the weights."),
    key!("precision.tau", "number", "see `precision`", "> 0", &[Co2, MnistRotated, Uci, ConcreteSynthetic], "10",
        "Model precision tau (1 / observation noise variance); uci: a fixed tau instead of the grid; concrete_synthetic: default 1 (the authors'), it scales only the regulariser, weight_reg = l^2 / (tau N) and dropout_reg = 2 / (tau N), since the noise is learnt."),
    key!("predict", "section", "co2, uci, concrete_synthetic: required", "", ALL, "{memory_budget_mb: 16}",
        "MC prediction."),
    key!("predict.samples", "integer", "required", ">= 1 (concrete_synthetic: >= 2)", &[Co2, Uci, ConcreteSynthetic, ActiveLearning], "20",
        "T, the stochastic forward passes per input (mnist_rotated: `mnist.rotation_samples`, `mnist.test_samples`; active_learning: per scored pool image, the authors' 100)."),
    key!("predict.memory_budget_mb", "number", "256", "> 0", ALL, "16",
        "Memory for the passes' activations; passes are batched in chunks that fit (on the CPU at most 16 MiB of activations)."),
    key!("co2", "section", "co2: required", "", &[Co2], "{x_star: 3.5}",
        "CO2 study settings."),
    key!("co2.x_star", "number", "required", "finite", &[Co2], "3.5",
        "The far input (standardised units) whose predictive mean and sd go in the table."),
    key!("co2.small_samples", "integer", "10", ">= 1", &[Co2], "5",
        "T of the Fig. 3 comparison (ReLU runs whose `predict.samples` is larger)."),
    key!("co2.band_sd", "section", "`{relu: 2, tanh: 8}`", "", &[Co2], "{relu: 2, tanh: 8}",
        "Half-width of the drawn band in predictive sd, per activation (the paper draws TanH at 8)."),
    key!("co2.band_sd.relu", "number", "2", "> 0", &[Co2], "2",
        "Band half-width for ReLU (and sigmoid) runs."),
    key!("co2.band_sd.tanh", "number", "8", "> 0", &[Co2], "8",
        "Band half-width for TanH runs."),
    key!("co2.gp", "boolean", "true with `co2.report: paper`", "`true`, `false`; `true` only with `co2.report: paper`", &[Co2], "true",
        "Also fit the GP baseline and draw it in Fig. 2."),
    key!("co2.report", "string", "`sd_curves` with a sweep, else `paper`", "`paper` (not with a sweep), `sd_curves`", &[Co2], "sd_curves",
        "`paper`: Fig. 2 and 3 (one MC dropout run per activation, standard dropout, the GP). `sd_curves`: a comparison, e.g. of dropout rates: the summary table of every run and one figure of predictive sd against x per activation (`sd_vs_x_<activation>`), one line per run; variants can then pair each rate with its own width."),
    key!("co2.near_from", "number", "all training inputs", "a number", &[Co2], "-0.5",
        "`sd_near_data` averages the predictive sd over training inputs with x >= this."),
    key!("co2.fit_window", "integer", "12", ">= 3, at most the training points", &[Co2], "12",
        "Points per window of the fit check (12: one year of the monthly series): a window is flat when the data swing with structure about their local trend (lag-1 autocorrelation >= 0.4) and the mean leaves half or more of that swing unexplained."),
    key!("mnist", "section", "mnist_rotated: required", "", &[MnistRotated], "{digit_index: 9978, angles: [0, 30]}",
        "Rotated-MNIST study settings."),
    key!("mnist.digit_index", "integer", "required", "an index into the 10,000 test images", &[MnistRotated], "9978",
        "The test image to rotate (9978 is a \"1\")."),
    key!("mnist.angles", "list of numbers", "required", "at least one finite angle, degrees counter-clockwise", &[MnistRotated], "[0, 30, 60]",
        "Rotation angles of Fig. 4."),
    key!("mnist.rotation_samples", "integer", "100", ">= 1", &[MnistRotated], "8",
        "MC passes per rotated image."),
    key!("mnist.test_samples", "integer", "50", ">= 1", &[MnistRotated], "4",
        "MC passes per test image for accuracy, NLL, Brier, ECE and the out-of-distribution scores."),
    key!("mnist.ood", "boolean", "true", "`true`, `false`", &[MnistRotated], "true",
        "Fashion-MNIST against MNIST out-of-distribution detection."),
    key!("mnist.train_limit", "integer", "all 60,000", ">= 1", &[MnistRotated], "256",
        "Train on the first N training images only (quick runs, tests)."),
    key!("mnist.test_limit", "integer", "all 10,000", ">= 1", &[MnistRotated], "200",
        "Evaluate on the first N test images only."),
    key!("mnist.monitor_images", "integer", "2000", ">= 1", &[MnistRotated], "100",
        "Test images whose accuracy is logged after every epoch."),
    key!("uci", "section", "uci: required", "", &[Uci], "{datasets: [yacht], epoch_multiplier: 1}",
        "UCI benchmark settings (the authors' 2018 protocol)."),
    key!("uci.datasets", "`all` or list of names", "required (not with `data.csv`)", "`all` or names from `bostonHousing`, `concrete`, `energy`, `kin8nm`, `naval-propulsion-plant`, `power-plant`, `protein-tertiary-structure`, `wine-quality-red`, `yacht`, `YearPredictionMSD` (not vendored: skipped)", &[Uci], "[yacht]",
        "Data sets, in table order for `all`."),
    key!("uci.splits", "integer", "all (20; protein 5)", ">= 1", &[Uci], "3",
        "Use only the first K standard splits of each data set."),
    key!("uci.epoch_multiplier", "number", "required (not with `data.csv`)", "> 0", &[Uci], "10",
        "Training epochs = the data set's `n_epochs.txt` x this (the authors' result files are labelled 100x)."),
    key!("uci.epochs", "integer", "with `data.csv`: required", ">= 1", &[Uci], "40",
        "Training epochs for your own table (`data.csv`)."),
    key!("uci.validation_samples", "integer", "1000", ">= 1", &[Uci], "200",
        "MC passes for each grid point's validation log-likelihood."),
    key!("uci.dropout_rates", "list of numbers", "each data set's `dropout_rates.txt`; `data.csv`: [0.005, 0.01, 0.05, 0.1]", "drop probabilities in [0, 1)", &[Uci], "[0.005, 0.05]",
        "The grid of p."),
    key!("uci.tau_values", "list of numbers", "each data set's `tau_values.txt`; `data.csv`: required", "> 0, original target units", &[Uci], "[0.1, 1]",
        "The grid of tau."),
    key!("uci.splits_per_stack", "integer", "20", ">= 1", &[Uci], "5",
        "Splits trained together as one stacked model (each with its whole grid); a stack's splits are saved when it finishes."),
    key!("uci.stack_trainer", "`fused` or `libtorch`", "`fused` for MC dropout with ReLU, else `libtorch`", "`fused` (MC dropout, ReLU), `libtorch`", &[Uci], "libtorch",
        "Trainer and MC evaluation of MC dropout's stacked nets: `fused` runs each net's step as plain loops (AVX2 where the CPU has it), `libtorch` as batched libtorch ops. Same protocol and masks; they agree to rounding, and each has its own resume key."),
    key!("concrete_synthetic", "section", "every key's default", "", &[ConcreteSynthetic], "{sizes: [10, 100], repeats: 1}",
        "Concrete dropout's synthetic study: y = 2 x + 8 + e, x and e ~ N(0, 1), drawn from `seed`; one net per (N, repetition)."),
    key!("concrete_synthetic.sizes", "list of integers", "[10, 25, 50, 100, 1000, 10000] (the authors')", "2 <= N <= 1,000,000, strictly increasing", &[ConcreteSynthetic], "[10, 100]",
        "Training-set sizes N."),
    key!("concrete_synthetic.repeats", "integer", "3 (the authors')", ">= 1", &[ConcreteSynthetic], "2",
        "Repetitions per N, each with its own data, initial weights, mini-batch order and masks (seeds derived from `seed`, N and the repetition)."),
    key!("concrete_synthetic.test_points", "integer", "1000 (the authors')", "1 to 1,000,000", &[ConcreteSynthetic], "200",
        "Held-out points per (N, repetition), drawn like the training data, at which the sds, RMSE and log-likelihood are measured."),
    key!("active_learning", "section", "every key's default", "", &[ActiveLearning], "{functions: [bald, random], rounds: 2}",
        "Active learning on MNIST (Gal, Islam & Ghahramani 2017): per function and repeat, a balanced initial set and a validation set are drawn from the 60,000 training images (`seed`, repeat), the rest is the pool; each round trains the CNN from scratch for `trainer.epochs`, measures the test error (standard dropout, as the authors' code), scores a random pool subset with `predict.samples` MC passes and moves the best `acquire` images to the training set. Every finished round is saved in the resume cache (`results/.cache/active_learning/`)."),
    key!("active_learning.functions", "list of words", "all five", "`bald`, `variation_ratios`, `max_entropy`, `mean_std`, `random`, each once", &[ActiveLearning], "[bald, random]",
        "Acquisition functions: BALD (mutual information), variation ratios, max entropy (predictive entropy), mean STD (per-class sd of the passes' probabilities, averaged over classes), random (no passes)."),
    key!("active_learning.repeats", "integer", "3 (the paper's)", ">= 1", &[ActiveLearning], "2",
        "Repeats per function, each with its own initial and validation sets, weights, batches and masks (seeds from `seed` and the repeat; a repeat's sets are the same for every function)."),
    key!("active_learning.rounds", "integer", "100 (the paper's)", ">= 1; rounds x acquire at most the pool", &[ActiveLearning], "2",
        "Acquisition rounds; the net is trained rounds + 1 times (the last after the last acquisition)."),
    key!("active_learning.acquire", "integer", "10 (the paper's)", ">= 1, at most `pool_subset`", &[ActiveLearning], "5",
        "Images acquired per round (the highest scores of the scored subset)."),
    key!("active_learning.initial", "integer", "20 (the paper's: 2 per class)", "a multiple of 10, from 10 to 54,210", &[ActiveLearning], "10",
        "Initial training set, balanced over the 10 classes."),
    key!("active_learning.validation", "integer", "100 (the paper's; the authors' code: 5,000)", "0 to 60,000", &[ActiveLearning], "50",
        "Training images held out as a validation set (never acquired; its error is recorded per round)."),
    key!("active_learning.pool_subset", "integer", "2000 (the authors' code)", "`acquire` to the pool left at the last round", &[ActiveLearning], "200",
        "Pool images drawn at random and scored each round."),
    key!("active_learning.test_images", "integer", "10000 (all)", "1 to 10,000", &[ActiveLearning], "500",
        "The first N MNIST test images measure the test error."),
    key!("active_learning.dense_l2", "number", "2.5 (the authors' code)", ">= 0", &[ActiveLearning], "3.5",
        "c of the authors' Keras `l2(c / N)` on the hidden dense layer's weights: the objective is cross-entropy + (c / N) ||W||^2, N the round's training-set size (`trainer.weight_decay` is the optimiser's decay on every weight, 0 in the authors' code)."),
    key!("active_learning.conv_dropout", "number", "0.25 (the authors')", "[0, 1)", &[ActiveLearning], "0.25",
        "Drop rate after the pooling; `model.dropout` is the rate after the dense layer (the authors' 0.5)."),
    key!("variants", "list", "one run", "a non-empty list of `{name, set}`; names unique", ALL, "[{name: a, set: {seed: 1}}]",
        "Named runs: each applies its `set` to the base document."),
    key!("variants[].name", "text", "required", "not empty, unique", ALL, "a",
        "The run's name (tables, figures, `config.resolved.yaml`)."),
    key!("variants[].set", "mapping", "`{}`", "dotted key path -> value", ALL, "{seed: 1}",
        "Overrides of this run."),
    key!("sweep", "mapping", "no sweep", "dotted key path -> non-empty list of values; several keys give the product", ALL, "{seed: [1, 2]}",
        "One run per combination, after the variant's `set`."),
];

/// The entry of a resolved document's key path, if the reference lists it.
pub fn find(key: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|k| k.key == key)
}

/// The first key of a run's document that its study does not read, with the entry that says
/// who reads it. Sections are walked; lists and values are leaves.
pub fn unread_key(study: StudyKind, doc: &Value) -> Option<(String, &'static KeyDoc)> {
    fn walk(study: StudyKind, prefix: &str, v: &Value) -> Option<(String, &'static KeyDoc)> {
        let Value::Mapping(m) = v else { return None };
        for (k, child) in m {
            let Some(k) = k.as_str() else { continue };
            let path = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            if let Some(doc) = find(&path) {
                if !doc.studies.contains(&study) {
                    return Some((path, doc));
                }
                if let Some(found) = walk(study, &path, child) {
                    return Some(found);
                }
            }
        }
        None
    }
    walk(study, "", doc)
}

/// The names configs use for studies.
pub fn study_name(s: StudyKind) -> &'static str {
    match s {
        Co2 => "co2",
        MnistRotated => "mnist_rotated",
        Uci => "uci",
        ConcreteSynthetic => "concrete_synthetic",
        ActiveLearning => "active_learning",
    }
}

/// `docs/config.md`: the reference as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Config reference\n\n\
         Generated from `experiments/src/config/reference.rs` by `mcd keys` (a test fails when \
         this file and the schema disagree). A config is YAML; unknown keys are errors, and so \
         is a key the config's study does not read. Resolution order: the base document, then \
         the variant's `set`, then the sweep point, then `--set` from the command line.\n\n\
         | key | type | default | allowed | read by | meaning |\n\
         |---|---|---|---|---|---|\n",
    );
    for k in KEYS {
        let studies = if k.studies.len() == ALL.len() {
            "all".to_string()
        } else {
            k.studies
                .iter()
                .map(|s| study_name(*s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cell = |s: &str| s.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            k.key,
            cell(k.ty),
            cell(k.default),
            cell(k.allowed),
            studies,
            cell(k.meaning)
        ));
    }
    out
}
