//! Seeded inverted dropout with its own counter-based mask generator.
//!
//! Why not `Tensor::dropout`: libtorch draws masks from one process-wide generator, so runs
//! trained in parallel threads would not be reproducible from their seed, and its CPU kernel is
//! slow (~6 ns per element). Here a mask element is a pure function of (seed, call, index):
//! reproducible whatever the threading, and cheap (one SplitMix64 hash gives four elements).
//!
//! Precision: the drop decision compares a 16-bit uniform integer `u` with
//! `threshold = round(p * 65536)`; an element is dropped when `u < threshold`. The effective
//! drop rate is `threshold / 65536` (within 2^-17 of `p`) and kept elements are scaled by
//! `1 / (1 - threshold / 65536)`, so the mask's expectation is exactly 1.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tch::{Kind, Tensor};

use crate::inplace::{is_plain_cpu_f32, with_mut};
use crate::rng::splitmix64;

mod kernel;
use kernel::LANES;

/// Below this many elements a mask is generated on the calling thread: handing work to the
/// pool costs more than generating ~2^16 elements (about 30 us).
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Largest mask kept in the reusable buffer (16 MiB of f32 per layer); bigger ones are
/// allocated per call so that one huge batch does not pin its memory for the model's lifetime.
pub(crate) const SCRATCH_MAX_ELEMENTS: usize = 1 << 22;

/// Dropout layer: drops each element with probability `p` when `train` is true.
pub struct Dropout {
    threshold: u32,
    scale: f32,
    /// The threshold in force: `threshold`, unless a dropout warm-up lowered it for now
    /// ([`Dropout::set_rate_fraction`]).
    current: AtomicU32,
    seed: u64,
    calls: AtomicU64,
}

thread_local! {
    /// One mask buffer per thread, shared by every dropout layer: a fresh large Vec costs a page
    /// fault per 4 KiB on first touch, more than generating the mask itself, and one buffer (not
    /// one per layer) keeps MC prediction's memory at one mask beyond its activations.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Fills `n` mask values with `fill` in this thread's reusable buffer (a fresh one above
/// [`SCRATCH_MAX_ELEMENTS`]) and copies them into a new tensor.
pub(crate) fn mask_tensor(n: usize, fill: impl FnOnce(&mut [f32])) -> Tensor {
    if n > SCRATCH_MAX_ELEMENTS {
        let mut buf = vec![0f32; n];
        fill(&mut buf);
        return Tensor::from_slice(&buf);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.resize(n, 0.0);
            fill(&mut buf[..n]);
            Tensor::from_slice(&buf[..n])
        }
        // Only re-entrancy (a fill that itself builds a mask) could get here: use a fresh one.
        Err(_) => {
            let mut buf = vec![0f32; n];
            fill(&mut buf);
            Tensor::from_slice(&buf)
        }
    })
}

impl std::fmt::Debug for Dropout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dropout")
            .field("rate", &self.effective_rate())
            .field("seed", &self.seed)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl Dropout {
    /// `p` is the probability of dropping a unit, in [0, 1).
    pub fn new(p: f64, seed: u64) -> Self {
        let threshold = (p.clamp(0.0, 1.0) * 65536.0).round().min(65535.0) as u32;
        Self {
            threshold,
            scale: scale_of(threshold),
            current: AtomicU32::new(threshold),
            seed: splitmix64(seed),
            calls: AtomicU64::new(0),
        }
    }

    /// The drop rate actually used (p rounded to a multiple of 2^-16).
    pub fn effective_rate(&self) -> f64 {
        self.threshold as f64 / 65536.0
    }

    /// Drops at `fraction` of the configured rate from now on (a dropout warm-up; 1 restores
    /// the configured rate exactly, bit for bit). The mask stream is not touched.
    pub fn set_rate_fraction(&self, fraction: f64) {
        let t = if fraction >= 1.0 {
            self.threshold
        } else {
            (f64::from(self.threshold) * fraction.max(0.0)).round() as u32
        };
        self.current.store(t, Ordering::Relaxed);
    }

    /// The threshold and kept-unit scale in force now.
    fn in_force(&self) -> (u32, f32) {
        let t = self.current.load(Ordering::Relaxed);
        if t == self.threshold {
            (t, self.scale)
        } else {
            (t, scale_of(t))
        }
    }

    /// Restart the mask stream (e.g. so a prediction is reproducible after training).
    pub fn reseed(&self, seed: u64) {
        self.calls
            .store(splitmix64(seed) & 0xFFFF_FFFF, Ordering::Relaxed);
    }

    /// Inverted dropout; identity when `train` is false or p == 0.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        if !train || !self.is_active() {
            return xs.shallow_clone();
        }
        if is_plain_cpu_f32(xs) {
            // No autograd (MC prediction runs under no_grad): mask a copy in place, one pass.
            return self.forward_owned(xs.copy(), train, false);
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let n = xs.numel();
        let mask = mask_tensor(n, |buf| self.fill_range(call, 0, buf, mask_threads()))
            .view(xs.size().as_slice())
            .to_device(xs.device())
            .to_kind(xs.kind());
        // Autograd saves the mask for the backward pass.
        xs * mask
    }

    /// `forward(relu(xs))` (ReLU when `relu`) for a tensor the caller owns alone (fresh from an
    /// op, no other handle to its memory): on a CPU f32 tensor outside autograd the ReLU and
    /// the mask are applied in place, in one pass, with the same floats as the two steps.
    pub(crate) fn forward_owned(&self, mut xs: Tensor, train: bool, relu: bool) -> Tensor {
        if train && self.mask_in_place(&mut xs, relu) {
            return xs;
        }
        let xs = if relu { xs.relu() } else { xs };
        self.forward(&xs, train)
    }

    /// Applies the next mask (after a ReLU when `relu`) to `xs` in place and returns true, when
    /// `xs` is a CPU f32 tensor outside autograd that nothing else reads meanwhile; otherwise
    /// leaves it alone and returns false. The layer's call counter moves on only when applied.
    pub(crate) fn mask_in_place(&self, xs: &mut Tensor, relu: bool) -> bool {
        if !self.is_active() || !is_plain_cpu_f32(xs) {
            return false;
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let threads = mask_threads();
        with_mut(xs, |data: &mut [f32]| {
            if relu {
                self.run_range::<{ kernel::RELU_MUL }>(call, 0, data, threads);
            } else {
                self.run_range::<{ kernel::MUL }>(call, 0, data, threads);
            }
        })
        .is_some()
    }

    /// Writes the mask of this layer's next call into `out` (0 or scale per element), using up
    /// to `threads` threads: what [`Dropout::forward`] would multiply a tensor of `out.len()`
    /// elements by. A stack of nets fills each member's slice of one buffer this way, so a
    /// member sees the same masks as when run alone.
    pub fn fill_next(&self, out: &mut [f32], threads: usize) {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        self.fill_range(call, 0, out, threads);
    }

    /// The value of a kept unit's mask, 1 / (1 - effective rate), at the rate in force.
    pub fn scale(&self) -> f32 {
        self.in_force().1
    }

    /// Whether this layer drops anything (p rounded to 2^-16 is above 0).
    pub fn is_active(&self) -> bool {
        self.in_force().0 > 0
    }

    /// Mask values (0 or scale) for `n` elements of call number `call`.
    pub fn mask(&self, call: u64, n: usize) -> Vec<f32> {
        self.mask_with_threads(call, n, mask_threads())
    }

    /// [`Dropout::mask`] generated by up to `threads` threads; the values do not depend on
    /// `threads` (element i is a function of (seed, call, i) only).
    pub fn mask_with_threads(&self, call: u64, n: usize, threads: usize) -> Vec<f32> {
        let mut out = vec![0f32; n];
        self.fill_range(call, 0, &mut out, threads);
        out
    }

    /// Writes elements `start..start + out.len()` of call `call`'s mask into `out` (`start` a
    /// multiple of 4), using up to `threads` threads; the layer's call counter is not touched.
    /// A slice of a call's mask is exactly that part of the whole mask.
    pub fn fill_range(&self, call: u64, start: usize, out: &mut [f32], threads: usize) {
        self.run_range::<{ kernel::FILL }>(call, start, out, threads);
    }

    /// Applies kernel operation `OP` with elements `start..` of call `call`'s mask to `out`.
    fn run_range<const OP: u8>(&self, call: u64, start: usize, out: &mut [f32], threads: usize) {
        assert!(
            start.is_multiple_of(LANES),
            "mask ranges start at a multiple of {LANES}"
        );
        let key = splitmix64(self.seed ^ call.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let first = start / LANES;
        let n = out.len();
        let (thr, scale) = self.in_force();
        let threads = threads.clamp(1, n.div_ceil(PARALLEL_MIN_ELEMENTS).max(1));
        if threads == 1 {
            kernel::run::<OP>(key, first, out, thr, scale);
            return;
        }
        // Split on multiples of LANES so every hash's four lanes land in one worker.
        let per = n.div_ceil(threads).div_ceil(LANES) * LANES;
        // rayon's pool, not fresh threads: spawning an OS thread costs ~100 us here.
        rayon::scope(|s| {
            for (i, part) in out.chunks_mut(per).enumerate() {
                s.spawn(move |_| kernel::run::<OP>(key, first + i * per / LANES, part, thr, scale));
            }
        });
    }

    /// The number the next call will get (to address later calls with [`Dropout::fill_range`]).
    pub fn next_call(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Moves the stream on by `n` calls (after they were drawn with [`Dropout::fill_range`]).
    pub fn skip_calls(&self, n: u64) {
        self.calls.fetch_add(n, Ordering::Relaxed);
    }
}

/// A kept unit's mask value for `threshold`: 1 / (1 - threshold / 65536).
fn scale_of(threshold: u32) -> f32 {
    (1.0 / (1.0 - f64::from(threshold) / 65536.0)) as f32
}

/// Threads for mask generation: libtorch's intra-op thread count, i.e. the CPU share this run
/// was given (`tch::set_num_threads`), so a mask never oversubscribes the budget.
pub(crate) fn mask_threads() -> usize {
    usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1)
}

/// Fraction of exactly-zero entries of a tensor (test helper for drop rates).
pub fn zero_fraction(t: &Tensor) -> f64 {
    let zeros = t.eq(0.0).to_kind(Kind::Double).mean(Kind::Double);
    f64::try_from(zeros).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empirical_drop_rate_and_mean_preserved() {
        for &p in &[0.05, 0.1, 0.5] {
            let d = Dropout::new(p, 3);
            let x = Tensor::ones([400, 1000], (Kind::Float, tch::Device::Cpu));
            let y = d.forward(&x, true);
            let rate = zero_fraction(&y);
            // 400k Bernoulli draws: sd of the rate is < 0.001.
            assert!((rate - p).abs() < 0.004, "p {p} rate {rate}");
            let mean = f64::try_from(y.mean(Kind::Double)).unwrap();
            assert!((mean - 1.0).abs() < 0.01, "p {p} mean {mean}");
        }
    }

    #[test]
    fn masks_are_reproducible_and_differ_between_calls() {
        let a = Dropout::new(0.3, 11);
        let b = Dropout::new(0.3, 11);
        assert_eq!(a.mask(0, 1000), b.mask(0, 1000));
        assert_ne!(a.mask(0, 1000), a.mask(1, 1000));
        assert_ne!(a.mask(0, 1000), Dropout::new(0.3, 12).mask(0, 1000));
    }

    /// The mask written out element by element from the definition in the module docs.
    fn reference_mask(d: &Dropout, call: u64, n: usize) -> Vec<f32> {
        let key = splitmix64(d.seed ^ call.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        (0..n)
            .map(|i| {
                let h = splitmix64(key.wrapping_add((i / 4) as u64));
                let u = ((h >> (16 * (i % 4))) & 0xFFFF) as u32;
                if u < d.threshold {
                    0.0
                } else {
                    d.scale
                }
            })
            .collect()
    }

    #[test]
    fn parallel_masks_match_the_definition_for_any_thread_count() {
        let d = Dropout::new(0.1, 21);
        // Not a multiple of 4 and several parallel chunks, so splits and the tail are covered.
        let n = 3 * PARALLEL_MIN_ELEMENTS + 7;
        let expected = reference_mask(&d, 5, n);
        for threads in [1, 2, 3, 7, 64] {
            assert!(
                d.mask_with_threads(5, n, threads) == expected,
                "{threads} threads"
            );
        }
        assert_eq!(d.mask(9, 13), reference_mask(&d, 9, 13));
    }

    #[test]
    fn a_range_of_a_call_is_that_part_of_its_mask() {
        let d = Dropout::new(0.3, 2);
        let n = 3 * PARALLEL_MIN_ELEMENTS + 10;
        let whole = reference_mask(&d, 4, n);
        for (start, len, threads) in [(0, 9, 1), (8, 1000, 1), (400, 2 * PARALLEL_MIN_ELEMENTS, 2)]
        {
            let mut part = vec![0f32; len];
            d.fill_range(4, start, &mut part, threads);
            assert!(part == whole[start..start + len], "start {start} len {len}");
        }
        let before = d.next_call();
        d.skip_calls(3);
        assert_eq!(d.next_call(), before + 3);
    }

    #[test]
    fn parallel_mask_drop_rate_and_scale() {
        let d = Dropout::new(0.1, 4);
        let m = d.mask_with_threads(0, 1 << 20, 4);
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
        // 2^20 draws: sd of the rate is 3e-4.
        assert!((dropped - 0.1).abs() < 0.0015, "rate {dropped}");
        let scale = (1.0 / (1.0 - (6554.0 / 65536.0))) as f32;
        assert!(m.iter().all(|&v| v == 0.0 || v == scale));
    }

    #[test]
    fn forward_with_and_without_grad_applies_the_same_mask() {
        // Sizes below and above the reusable buffer's limit, and a small one again after.
        for n in [1000i64, (SCRATCH_MAX_ELEMENTS + 4) as i64, 10] {
            let x = Tensor::rand([n], (Kind::Float, tch::Device::Cpu)) + 0.5;
            let (a, b) = (Dropout::new(0.2, 8), Dropout::new(0.2, 8));
            let plain = tch::no_grad(|| a.forward(&x, true));
            let tracked = b.forward(&x.set_requires_grad(true), true);
            assert!(tracked.requires_grad());
            let expected = &x * Tensor::from_slice(&reference_mask(&a, 0, n as usize));
            assert!(plain.equal(&expected), "n {n}");
            assert!(tracked.detach().equal(&expected), "n {n}");
        }
    }

    #[test]
    fn eval_mode_is_identity() {
        let d = Dropout::new(0.5, 1);
        let x = Tensor::randn([10, 10], (Kind::Float, tch::Device::Cpu));
        assert!(d.forward(&x, false).equal(&x));
        assert!((d.effective_rate() - 0.5).abs() < 1e-12);
    }
}
