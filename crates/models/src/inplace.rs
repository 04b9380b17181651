//! Direct access to a CPU tensor's elements, for the fast paths that libtorch has no single op
//! for: dropout masks applied in the activation's own memory, and 2 x 2 max-pooling indices.
//!
//! With the mask kernel's CPU dispatch, the only place outside the optimiser where the
//! workspace allows `unsafe`. Invariant of every caller of [`with_mut`]: the tensor was just
//! returned by a libtorch op in the calling function and no other handle (shallow clone, view)
//! to its storage exists yet.

use tch::kind::Element;
use tch::{Device, Tensor};

/// Whether `t` holds `T`s, on the CPU, contiguously.
fn is_cpu_contiguous<T: Element>(t: &Tensor) -> bool {
    t.kind() == T::KIND && t.device() == Device::Cpu && t.is_contiguous()
}

/// Whether `t` can be modified through [`with_mut`]: f32, on the CPU, contiguous, and outside
/// autograd (a tensor that requires grad may be saved for a backward pass).
pub(crate) fn is_plain_cpu_f32(t: &Tensor) -> bool {
    is_cpu_contiguous::<f32>(t) && !t.requires_grad()
}

/// Runs `f` on the elements of `t` in place; `None` (and `f` not run) unless `t` is a
/// contiguous CPU tensor of `T` outside autograd. `t` must be unshared (see the module docs).
pub(crate) fn with_mut<T: Element, R>(t: &mut Tensor, f: impl FnOnce(&mut [T]) -> R) -> Option<R> {
    if !is_cpu_contiguous::<T>(t) || t.requires_grad() {
        return None;
    }
    let n = t.numel();
    if n == 0 {
        return Some(f(&mut []));
    }
    let ptr = t.data_ptr() as *mut T;
    // SAFETY: `t` is a contiguous CPU tensor of `n` `T`s starting at `ptr` (data_ptr includes
    // the storage offset), so the range is valid and aligned. The `&mut` borrow of `t` lasts
    // as long as the slice, and callers hold the only handle to the storage (module
    // invariant), so nothing else reads or writes it meanwhile.
    #[allow(unsafe_code)]
    let data = unsafe { std::slice::from_raw_parts_mut(ptr, n) };
    Some(f(data))
}

/// Runs `f` on the elements of `t` (read only); `None` unless `t` is a contiguous CPU tensor
/// of `T`. Autograd may track `t`: nothing is written.
pub(crate) fn with_ref<T: Element, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Option<R> {
    if !is_cpu_contiguous::<T>(t) {
        return None;
    }
    let n = t.numel();
    if n == 0 {
        return Some(f(&[]));
    }
    let ptr = t.data_ptr() as *const T;
    // SAFETY: as in `with_mut` for the range. Only shared access is handed out, and libtorch
    // ops do not write a tensor while the calling thread is inside `f` (the crate's tensors
    // are not used from other threads while an op of theirs runs).
    #[allow(unsafe_code)]
    let data = unsafe { std::slice::from_raw_parts(ptr, n) };
    Some(f(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn writes_land_in_the_tensor_and_other_tensors_are_refused() {
        let mut t = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([2, 3]);
        let sum = with_mut(&mut t, |d: &mut [f32]| {
            d[4] = 40.0;
            d.iter().sum::<f32>()
        });
        assert_eq!(sum, Some(0.0 + 1.0 + 2.0 + 3.0 + 40.0 + 5.0));
        assert_eq!(f64::try_from(t.get(1).get(1)).unwrap(), 40.0);
        assert_eq!(with_ref(&t, |d: &[f32]| d[4]), Some(40.0));
        let mut strided = t.tr();
        assert!(with_mut(&mut strided, |_: &mut [f32]| ()).is_none());
        assert!(with_ref(&strided, |_: &[f32]| ()).is_none());
        let mut double = Tensor::zeros([3], (Kind::Double, Device::Cpu));
        assert!(with_mut(&mut double, |_: &mut [f32]| ()).is_none());
        assert!(with_mut(&mut double, |_: &mut [f64]| ()).is_some());
        let mut tracked = Tensor::zeros([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        assert!(with_mut(&mut tracked, |_: &mut [f32]| ()).is_none());
        assert!(with_ref(&tracked, |_: &[f32]| ()).is_some());
    }
}
