//! A multilayer perceptron: ReLU hidden layers, a linear output layer whose
//! logits feed the fused softmax cross-entropy, and backpropagation through
//! the whole chain.

use crate::dense::{Input, SPARSE_INPUT_DENSITY};
use crate::{Dense, NnError, Result, Workspace, softmax_cross_entropy};
use backprop_tensor::{Rng, gemm_with, relu_backward_inplace};
use ndarray::{Array1, Array2, ArrayView2, s};

/// The network's parameters, one [`Dense`] layer per pair of adjacent sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
}

/// `dL/dW(l)` and `dL/db(l)` for every layer, shaped like the parameters.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// `dL/dW(l)`, `(n_in, n_out)`.
    pub dw: Vec<Array2<f32>>,
    /// `dL/db(l)`, `(n_out)`.
    pub db: Vec<Array1<f32>>,
}

impl Gradients {
    /// Zeroed gradients shaped like `model`'s parameters.
    pub fn new(model: &Mlp) -> Self {
        Self {
            dw: model.layers.iter().map(|l| Array2::zeros(l.w.dim())).collect(),
            db: model.layers.iter().map(|l| Array1::zeros(l.b.dim())).collect(),
        }
    }
}

/// The network input of a pass: given by the caller, or the copy the
/// workspace compressed (which cannot be borrowed alongside the workspace).
#[derive(Clone, Copy)]
pub(crate) enum Own<'a> {
    Given(Input<'a>),
    Compressed,
}

impl<'a> Own<'a> {
    fn input<'b>(self, compressed: &'b backprop_tensor::SparseRows) -> Input<'b>
    where
        'a: 'b,
    {
        match self {
            Own::Given(Input::Dense(x)) => Input::Dense(x.reborrow()),
            Own::Given(Input::Sparse(x)) => Input::Sparse(x),
            Own::Compressed => Input::Sparse(compressed),
        }
    }

    fn rows(self, ws: &Workspace) -> usize {
        self.input(&ws.input).rows()
    }
}

/// Which pre-activation BP2 multiplies by: a correct backward uses the
/// layer's own (`Z(l)` for `delta(l)`). Tests swap in the seed's "most common
/// bug in the wild" to show the gradient check catches it.
type MaskLayer = fn(usize) -> usize;

impl Mlp {
    /// A network with the given layer sizes (`[784, 128, 10]` is one hidden
    /// layer of 128), He-normal weights drawn from `rng` and zero biases.
    ///
    /// # Errors
    /// Fewer than two sizes, or a size of zero.
    pub fn new(sizes: &[usize], rng: &mut Rng) -> Result<Self> {
        validate_sizes(sizes)?;
        Ok(Self {
            layers: sizes.windows(2).map(|p| Dense::new(p[0], p[1], rng)).collect(),
        })
    }

    /// A network from existing layers (a checkpoint, an import), checking
    /// that they chain, that biases match, and that every value is finite.
    ///
    /// # Errors
    /// [`NnError::BadParameters`] naming the first bad layer.
    pub fn from_layers(layers: Vec<Dense>) -> Result<Self> {
        if layers.is_empty() {
            return Err(NnError::BadParameters {
                layer: 0,
                reason: "a network needs at least one layer".into(),
            });
        }
        for (i, layer) in layers.iter().enumerate() {
            let bad = |reason: String| Err(NnError::BadParameters { layer: i, reason });
            if layer.n_in() == 0 || layer.n_out() == 0 {
                return bad(format!(
                    "weights have shape {:?}; both sizes must be positive",
                    layer.w.dim()
                ));
            }
            if layer.b.len() != layer.n_out() {
                return bad(format!(
                    "bias has {} entries, expected {} (n_out)",
                    layer.b.len(),
                    layer.n_out()
                ));
            }
            if i > 0 && layers[i - 1].n_out() != layer.n_in() {
                return bad(format!(
                    "takes {} inputs but layer {} gives {}",
                    layer.n_in(),
                    i - 1,
                    layers[i - 1].n_out()
                ));
            }
            if !layer.w.iter().chain(&layer.b).all(|x| x.is_finite()) {
                return bad("parameters contain NaN or infinity".into());
            }
        }
        Ok(Self { layers })
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// The layers, mutably (for optimisers).
    pub fn layers_mut(&mut self) -> &mut [Dense] {
        &mut self.layers
    }

    /// Layer sizes, `[n_inputs, hidden..., n_outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.n_inputs())
            .chain(self.layers.iter().map(Dense::n_out))
            .collect()
    }

    /// Width of the input.
    pub fn n_inputs(&self) -> usize {
        self.layers[0].n_in()
    }

    /// Number of classes (width of the output).
    pub fn n_outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].n_out()
    }

    /// Number of trainable scalars.
    pub fn n_parameters(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// The forward pass (E1, E2) for `x: (B, n_inputs)`; returns the logits
    /// `Z(L): (B, n_outputs)`, a view into `ws`. A mostly-zero `x` is
    /// compressed first, so the first product skips the zeros.
    ///
    /// # Panics
    /// If `ws` was made for other sizes, `B > ws.max_batch()`, or `x` has the
    /// wrong width.
    #[track_caller]
    pub fn forward<'w>(&self, x: ArrayView2<'_, f32>, ws: &'w mut Workspace) -> ArrayView2<'w, f32> {
        self.check(Input::Dense(x), ws);
        ws.input.fill(x);
        let input = if ws.input.density() < SPARSE_INPUT_DENSITY {
            Own::Compressed
        } else {
            Own::Given(Input::Dense(x))
        };
        self.forward_from(input, ws)
    }

    /// The forward pass for an input exactly as given: a dense view or a
    /// batch the caller already compressed (see [`Mlp::forward`]).
    ///
    /// # Panics
    /// As [`Mlp::forward`].
    #[track_caller]
    pub fn forward_input<'w>(&self, x: Input<'_>, ws: &'w mut Workspace) -> ArrayView2<'w, f32> {
        self.check(x, ws);
        self.forward_from(Own::Given(x), ws)
    }

    #[track_caller]
    fn check(&self, x: Input<'_>, ws: &Workspace) {
        assert!(ws.fits(&self.layers), "forward: workspace was made for another network");
        assert!(
            x.rows() <= ws.max_batch,
            "forward: batch of {} exceeds the workspace's {}",
            x.rows(),
            ws.max_batch
        );
        assert_eq!(
            x.cols(),
            self.n_inputs(),
            "forward: x has {} columns, the network takes {}",
            x.cols(),
            self.n_inputs()
        );
    }

    fn forward_from<'w>(&self, x: Own<'_>, ws: &'w mut Workspace) -> ArrayView2<'w, f32> {
        let batch = x.rows(ws);
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let n_hidden = ws.a.len();
            let (done, rest) = ws.a.split_at_mut(l.min(n_hidden));
            let a_prev = match l {
                0 => x.input(&ws.input),
                _ => Input::Dense(done[l - 1].slice(s![..batch, ..])),
            };
            let z = ws.z[l].slice_mut(s![..batch, ..]);
            let a = (l < last).then(|| rest[0].slice_mut(s![..batch, ..]));
            layer.forward(&ws.pool, a_prev, z, a);
        }
        ws.z[last].slice(s![..batch, ..])
    }

    /// Forward, the loss, then backward: returns the mean loss of the batch
    /// and overwrites `grads` with its gradients.
    ///
    /// # Panics
    /// As [`Mlp::forward`], or if `labels.len()` differs from the batch size
    /// or a label is out of range.
    #[track_caller]
    pub fn backward(&self, x: ArrayView2<'_, f32>, labels: &[usize], ws: &mut Workspace, grads: &mut Gradients) -> f32 {
        self.check(Input::Dense(x), ws);
        ws.input.fill(x);
        let input = if ws.input.density() < SPARSE_INPUT_DENSITY {
            Own::Compressed
        } else {
            Own::Given(Input::Dense(x))
        };
        self.backward_from(input, labels, ws, grads, |l| l)
    }

    /// [`Mlp::backward`] for an input exactly as given (see
    /// [`Mlp::forward_input`]).
    ///
    /// # Panics
    /// As [`Mlp::backward`].
    #[track_caller]
    pub fn backward_input(&self, x: Input<'_>, labels: &[usize], ws: &mut Workspace, grads: &mut Gradients) -> f32 {
        self.check(x, ws);
        self.backward_from(Own::Given(x), labels, ws, grads, |l| l)
    }

    /// Backward with the pre-activation used by BP2 chosen by `mask_layer`
    /// (the identity for the correct algorithm).
    pub(crate) fn backward_from(
        &self,
        x: Own<'_>,
        labels: &[usize],
        ws: &mut Workspace,
        grads: &mut Gradients,
        mask_layer: MaskLayer,
    ) -> f32 {
        let batch = x.rows(ws);
        let last = self.layers.len() - 1;
        self.forward_from(x, ws);
        let logits = ws.z[last].slice(s![..batch, ..]);
        let loss = softmax_cross_entropy(logits, labels, ws.delta[last].slice_mut(s![..batch, ..]));
        for l in (0..=last).rev() {
            let a_prev = match l {
                0 => x.input(&ws.input),
                _ => Input::Dense(ws.a[l - 1].slice(s![..batch, ..])),
            };
            let (below, here) = ws.delta.split_at_mut(l);
            let delta = here[0].slice(s![..batch, ..]);
            // BP3 and BP4 for layer l.
            Dense::backward(&ws.pool, a_prev, delta, grads.dw[l].view_mut(), grads.db[l].view_mut());
            if l > 0 {
                // BP2: delta(l-1) = (delta(l) W(l)^T) * 1[Z(l-1) > 0].
                let mut delta_below = below[l - 1].slice_mut(s![..batch, ..]);
                let wt = &mut ws.wt[l - 1];
                wt.assign(&self.layers[l].w.t());
                gemm_with(&ws.pool, 1.0, delta, wt.view(), 0.0, &mut delta_below);
                relu_backward_inplace(delta_below, ws.z[mask_layer(l - 1)].slice(s![..batch, ..]));
            }
        }
        loss
    }
}

fn validate_sizes(sizes: &[usize]) -> Result<()> {
    if sizes.len() < 2 {
        return Err(NnError::InvalidConfig {
            field: "layer sizes",
            reason: format!("need at least an input and an output size, got {sizes:?}"),
        });
    }
    if sizes.contains(&0) {
        return Err(NnError::InvalidConfig {
            field: "layer sizes",
            reason: format!("every size must be positive, got {sizes:?}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
