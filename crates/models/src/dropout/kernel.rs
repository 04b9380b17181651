//! The mask kernel: hash blocks of (seed, call, index) into 16-bit uniforms and turn them into
//! mask values, written out or multiplied into activations. One generic body, compiled three
//! times (baseline x86-64, AVX2, AVX-512) and picked at run time: the wide builds let LLVM
//! vectorise SplitMix64's 64-bit multiplies, which the baseline build (SSE2) cannot, and every
//! build computes the same integers, so the masks do not depend on the CPU.

use crate::rng::splitmix64;

/// Write the mask values.
pub(super) const FILL: u8 = 0;
/// Multiply the values in place by the mask.
pub(super) const MUL: u8 = 1;
/// ReLU, then multiply by the mask (`relu(x) * m`, the same floats as the two steps apart).
pub(super) const RELU_MUL: u8 = 2;

/// Hashes per step of the vectorised loop (64 elements).
const HASHES: usize = 16;
/// Elements per hash (16 bits each).
pub(super) const LANES: usize = 4;

/// Applies operation `OP` to `out`, elements `4 * first_block ..` of the mask with key `key`.
pub(super) fn run<const OP: u8>(
    key: u64,
    first_block: usize,
    out: &mut [f32],
    thr: u32,
    scale: f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has the features this build of the body was compiled for.
            #[allow(unsafe_code)]
            unsafe {
                return run_avx512::<OP>(key, first_block, out, thr, scale);
            }
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            #[allow(unsafe_code)]
            unsafe {
                return run_avx2::<OP>(key, first_block, out, thr, scale);
            }
        }
    }
    body::<OP>(key, first_block, out, thr, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl")]
fn run_avx512<const OP: u8>(key: u64, first_block: usize, out: &mut [f32], thr: u32, scale: f32) {
    body::<OP>(key, first_block, out, thr, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_avx2<const OP: u8>(key: u64, first_block: usize, out: &mut [f32], thr: u32, scale: f32) {
    body::<OP>(key, first_block, out, thr, scale)
}

#[inline(always)]
fn apply<const OP: u8>(u: u16, x: &mut f32, thr: u32, scale: f32) {
    let m = if u as u32 >= thr { scale } else { 0.0 };
    *x = match OP {
        FILL => m,
        MUL => *x * m,
        // `!(v <= 0)` keeps NaN, as libtorch's relu does.
        _ => {
            let v = *x;
            let r = if v <= 0.0 { 0.0 } else { v };
            r * m
        }
    };
}

#[inline(always)]
fn body<const OP: u8>(key: u64, first_block: usize, out: &mut [f32], thr: u32, scale: f32) {
    let mut block = (first_block as u64).wrapping_add(key);
    let mut steps = out.chunks_exact_mut(HASHES * LANES);
    for chunk in &mut steps {
        let mut u = [0u16; HASHES * LANES];
        for k in 0..HASHES {
            let h = splitmix64(block.wrapping_add(k as u64));
            for lane in 0..LANES {
                u[k * LANES + lane] = (h >> (16 * lane)) as u16;
            }
        }
        for (x, &u) in chunk.iter_mut().zip(&u) {
            apply::<OP>(u, x, thr, scale);
        }
        block = block.wrapping_add(HASHES as u64);
    }
    for (k, part) in steps.into_remainder().chunks_mut(LANES).enumerate() {
        let h = splitmix64(block.wrapping_add(k as u64));
        for (lane, x) in part.iter_mut().enumerate() {
            apply::<OP>((h >> (16 * lane)) as u16, x, thr, scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs with both signs, zeros and a NaN, of a length with a partial step and a tail.
    fn inputs(n: usize) -> Vec<f32> {
        let mut x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        x[5] = f32::NAN;
        x
    }

    /// One build of the kernel: (key, first block, data, threshold, scale).
    type Build = fn(u64, usize, &mut [f32], u32, f32);

    fn run_with(variant: Build, first_block: usize, x: &[f32]) -> Vec<u32> {
        let mut out = x.to_vec();
        variant(0xABCD, first_block, &mut out, 6554, 1.0 / 0.9);
        out.iter().map(|v| v.to_bits()).collect()
    }

    fn variants<const OP: u8>() -> Vec<(&'static str, Build)> {
        let mut v: Vec<(&'static str, Build)> =
            vec![("baseline", body::<OP>), ("dispatched", run::<OP>)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                #[allow(unsafe_code)]
                fn avx2<const OP: u8>(k: u64, f: usize, o: &mut [f32], t: u32, s: f32) {
                    // SAFETY: only listed after the feature check above.
                    unsafe { run_avx2::<OP>(k, f, o, t, s) }
                }
                v.push(("avx2", avx2::<OP>));
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                #[allow(unsafe_code)]
                fn avx512<const OP: u8>(k: u64, f: usize, o: &mut [f32], t: u32, s: f32) {
                    // SAFETY: only listed after the feature check above.
                    unsafe { run_avx512::<OP>(k, f, o, t, s) }
                }
                v.push(("avx512", avx512::<OP>));
            }
        }
        v
    }

    fn all_builds_agree<const OP: u8>() {
        let x = inputs(HASHES * LANES * 3 + 7);
        for first_block in [0, 5] {
            let mut results = variants::<OP>()
                .into_iter()
                .map(|(name, f)| (name, run_with(f, first_block, &x)));
            let (_, expected) = results.next().unwrap();
            for (name, got) in results {
                assert!(
                    got == expected,
                    "op {OP}: {name} differs from the baseline build"
                );
            }
        }
    }

    #[test]
    fn every_cpu_build_computes_the_same_bits() {
        all_builds_agree::<FILL>();
        all_builds_agree::<MUL>();
        all_builds_agree::<RELU_MUL>();
    }

    #[test]
    fn operations_follow_their_definitions() {
        let x = inputs(HASHES * LANES + 3);
        let mut mask = x.clone();
        body::<FILL>(9, 0, &mut mask, 6554, 2.0);
        assert!(mask.iter().all(|&m| m == 0.0 || m == 2.0));
        let (mut mul, mut relu_mul) = (x.clone(), x.clone());
        body::<MUL>(9, 0, &mut mul, 6554, 2.0);
        body::<RELU_MUL>(9, 0, &mut relu_mul, 6554, 2.0);
        for i in 0..x.len() {
            let relu = if x[i] <= 0.0 { 0.0 } else { x[i] };
            assert_eq!(mul[i].to_bits(), (x[i] * mask[i]).to_bits(), "MUL at {i}");
            assert_eq!(
                relu_mul[i].to_bits(),
                (relu * mask[i]).to_bits(),
                "RELU_MUL at {i}"
            );
        }
        assert!(relu_mul[5].is_nan(), "ReLU keeps NaN");
    }
}
