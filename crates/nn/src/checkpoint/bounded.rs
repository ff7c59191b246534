//! Length caps applied while a checkpoint decodes, before anything is
//! allocated for the elements: a forged length prefix, or millions of
//! empty entries (one byte each on disk, 24 in memory), cannot make the
//! decoder hold more than a small multiple of the file. The caps are
//! constants of the format, wider than anything valid; `check` then
//! applies the exact rules. The bytes on disk are unchanged: these only
//! decode.

use super::check::MAX_LAYERS;
use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// At most this many class names.
pub(super) const MAX_CLASSES: usize = 1 << 16;
/// At most this many data files or feature columns recorded.
pub(super) const MAX_COLUMNS: usize = 1 << 20;

/// A `Vec<T>` of at most `N` elements.
pub(super) fn vec<'de, D, T, const N: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const N: usize>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a sequence of at most {N} elements")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let declared = seq.size_hint().unwrap_or(0);
            if declared > N {
                return Err(A::Error::custom(format!(
                    "a list of {declared} elements, more than the {N} this field allows"
                )));
            }
            // Never more than 64 KiB reserved up front: the rest grows as
            // elements actually arrive.
            let mut out = Vec::with_capacity(declared.min((1 << 16) / size_of::<T>().max(1)));
            while let Some(element) = seq.next_element()? {
                if out.len() == N {
                    return Err(A::Error::custom(format!(
                        "more than the {N} elements this field allows"
                    )));
                }
                out.push(element);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_seq(Bounded::<T, N>(PhantomData))
}

/// Up to [`MAX_LAYERS`] layers.
pub(super) fn layers<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    vec::<D, T, MAX_LAYERS>(d)
}

/// Up to [`MAX_LAYERS`] + 1 layer sizes.
pub(super) fn sizes<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    vec::<D, T, { MAX_LAYERS + 1 }>(d)
}

/// Up to [`MAX_CLASSES`] class names.
pub(super) fn classes<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    vec::<D, T, MAX_CLASSES>(d)
}

/// Up to [`MAX_COLUMNS`] files or columns.
pub(super) fn columns<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    vec::<D, T, MAX_COLUMNS>(d)
}

/// Up to [`crate::MAX_EPOCHS`] epochs of history.
pub(super) fn history<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    vec::<D, T, { crate::MAX_EPOCHS }>(d)
}

/// An optimiser's slots: at most 2, each of at most two tensors per layer.
pub(super) fn slots<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<Vec<f32>>>, D::Error> {
    struct Tensors(Vec<Vec<f32>>);
    impl<'de> Deserialize<'de> for Tensors {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            vec::<D, Vec<f32>, { 2 * MAX_LAYERS }>(d).map(Tensors)
        }
    }
    Ok(vec::<D, Tensors, 2>(d)?.into_iter().map(|t| t.0).collect())
}
