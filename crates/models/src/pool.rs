//! 2 x 2 max-pooling with stride 2 (LeNet's), faster than libtorch's CPU `max_pool2d` and
//! identical to it, gradients included.
//!
//! libtorch's NCHW kernel took about 2.7 ns per input element here (2 ms for LeNet's first
//! pooling of a batch of 64, three times its convolution). Here the index of each window's
//! maximum is found in Rust and the values are taken with `gather`, whose backward pass puts
//! each output's gradient on that index, as `max_pool2d`'s does. The index is the one
//! libtorch picks: the first strict maximum in row-major window order, or the last NaN.

use tch::{Device, Kind, Tensor};

use crate::inplace::{with_mut, with_ref};

/// `xs.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)` for `xs` [N, C, H, W]. The fast
/// path needs a contiguous CPU f32 tensor with even H and W; anything else goes to libtorch.
pub fn max_pool_2x2(xs: &Tensor) -> Tensor {
    fast(xs).unwrap_or_else(|| xs.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false))
}

fn fast(xs: &Tensor) -> Option<Tensor> {
    let &[n, c, h, w] = xs.size().as_slice() else {
        return None;
    };
    if h % 2 != 0 || w % 2 != 0 || n * c * h * w == 0 {
        return None;
    }
    // The widths of LeNet on MNIST (and 22, the active-learning CNN's), as compile-time constants: that lets LLVM vectorise the
    // loop (0.3 ms for LeNet's first pooling of 64 images, against 2.1 ms for the same code
    // with a run-time width, whose selects became branches). Other widths go to libtorch.
    let argmax: fn(&[f32], usize, &mut [i64]) = match w {
        24 => argmax_planes::<24>,
        22 => argmax_planes::<22>,
        8 => argmax_planes::<8>,
        _ => return None,
    };
    let (ho, wo) = (h / 2, w / 2);
    let mut idx = Tensor::empty([n, c, ho * wo], (Kind::Int64, Device::Cpu));
    with_ref(xs, |data: &[f32]| {
        with_mut(&mut idx, |out: &mut [i64]| argmax(data, h as usize, out))
    })??;
    Some(
        xs.view([n, c, h * w])
            .gather(2, &idx, false)
            .view([n, c, ho, wo]),
    )
}

/// The flat index of each 2 x 2 window's maximum, over every plane (`h` rows of `W`) of `data`.
fn argmax_planes<const W: usize>(data: &[f32], h: usize, out: &mut [i64]) {
    let hw = h * W;
    // A plane of `hw` inputs has `hw / 4` windows.
    for (out, plane) in out.chunks_mut(hw / 4).zip(data.chunks(hw)) {
        for (i, out) in out.chunks_exact_mut(W / 2).enumerate() {
            let top = &plane[2 * i * W..(2 * i + 1) * W];
            let bottom = &plane[(2 * i + 1) * W..(2 * i + 2) * W];
            let row = (2 * i * W) as i64;
            for (j, slot) in out.iter_mut().enumerate() {
                let first = row + 2 * j as i64;
                let (mut max, mut best) = (top[2 * j], first);
                // The rest of the window in libtorch's scan order.
                let rest = [
                    (top[2 * j + 1], first + 1),
                    (bottom[2 * j], first + W as i64),
                    (bottom[2 * j + 1], first + W as i64 + 1),
                ];
                for (v, at) in rest {
                    // libtorch's rule: a strictly larger value or a NaN takes over.
                    let take = v > max || v.is_nan();
                    max = if take { v } else { max };
                    best = if take { at } else { best };
                }
                *slot = best;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &Tensor) -> Tensor {
        x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
    }

    #[test]
    fn values_and_gradients_equal_libtorch_with_ties_and_nan() {
        // LeNet's two widths and the CNN's 22; rounded normals give many tied windows (whole windows of zeros).
        for shape in [
            [3i64, 4, 8, 8],
            [2, 3, 24, 24],
            [2, 2, 6, 24],
            [2, 3, 22, 22],
        ] {
            let x0 = (Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.7).round();
            let _ = x0.get(0).get(1).get(2).fill_(f64::NAN);
            let out = [shape[0], shape[1], shape[2] / 2, shape[3] / 2];
            let g = Tensor::randn(out, (Kind::Float, Device::Cpu));
            let run = |pool: &dyn Fn(&Tensor) -> Tensor| {
                let x = x0.copy().set_requires_grad(true);
                let y = pool(&x);
                (&y * &g)
                    .nansum(None::<&[i64]>, false, Kind::Float)
                    .backward();
                (y.detach(), x.grad())
            };
            let (y_fast, g_fast) = run(&|x: &Tensor| fast(x).expect("the fast path"));
            let (y_ref, g_ref) = run(&reference);
            assert_eq!(y_fast.size(), out.to_vec());
            // NaN == NaN is false: compare the NaN positions, then the rest.
            assert!(y_fast.isnan().equal(&y_ref.isnan()));
            let finite = |t: &Tensor| t.nan_to_num(0.0, None, None);
            assert!(finite(&y_fast).equal(&finite(&y_ref)), "{shape:?}");
            assert!(
                g_fast.equal(&g_ref),
                "{shape:?}: gradients differ from max_pool2d's"
            );
        }
    }

    #[test]
    fn other_shapes_fall_back_to_libtorch() {
        let odd = Tensor::randn([2, 3, 5, 8], (Kind::Float, Device::Cpu));
        assert!(fast(&odd).is_none());
        assert!(max_pool_2x2(&odd).equal(&reference(&odd)));
        let other_width = Tensor::randn([2, 3, 4, 6], (Kind::Float, Device::Cpu));
        assert!(fast(&other_width).is_none());
        assert!(max_pool_2x2(&other_width).equal(&reference(&other_width)));
        let strided = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu)).transpose(2, 3);
        assert!(fast(&strided).is_none());
        assert!(max_pool_2x2(&strided).equal(&reference(&strided)));
        let double = Tensor::randn([1, 2, 8, 8], (Kind::Double, Device::Cpu));
        assert!(fast(&double).is_none());
        assert!(max_pool_2x2(&double).equal(&reference(&double)));
    }
}
