//! A multilayer perceptron: dense layers with their activations, a linear
//! output layer whose values feed the loss, and backpropagation through the
//! whole chain.

use crate::dense::{Input, SPARSE_INPUT_DENSITY};
use crate::{Activation, BatchNorm, Dense, Init, Loss, NnError, Result, Targets, Workspace};
use backprop_tensor::{Rng, gemm_transposed_b_with, softmax_rows};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, s};
/// The network's parameters, one [`Dense`] layer per pair of adjacent sizes.
///
/// Each layer keeps its own activation; the output layer's is the identity,
/// and the loss takes its values (softmax cross-entropy fuses the softmax).
/// A hidden layer may normalise its pre-activations ([`BatchNorm`], see
/// [`Mlp::add_batch_norm`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
    /// One per layer: the batch normalisation between its E1 and E2.
    norms: Vec<Option<BatchNorm>>,
}

/// `dL/dW(l)` and `dL/db(l)` for every layer, shaped like the parameters,
/// and `dL/dgamma(l)`, `dL/dbeta(l)` for the batch-normalised ones.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// `dL/dW(l)`, `(n_in, n_out)`.
    pub dw: Vec<Array2<f32>>,
    /// `dL/db(l)`, `(n_out)`.
    pub db: Vec<Array1<f32>>,
    /// `dL/dgamma(l)`, `(n_out)` for a batch-normalised layer, empty for
    /// the others.
    pub dgamma: Vec<Array1<f32>>,
    /// `dL/dbeta(l)`, shaped as `dgamma`.
    pub dbeta: Vec<Array1<f32>>,
}

impl Gradients {
    /// Zeroed gradients shaped like `model`'s parameters.
    pub fn new(model: &Mlp) -> Self {
        let norm = || {
            model
                .norms
                .iter()
                .map(|n| Array1::zeros(n.as_ref().map_or(0, BatchNorm::len)))
                .collect()
        };
        Self {
            dw: model
                .layers
                .iter()
                .map(|l| backprop_tensor::aligned_zeros(l.w.dim()))
                .collect(),
            db: model.layers.iter().map(|l| Array1::zeros(l.b.dim())).collect(),
            dgamma: norm(),
            dbeta: norm(),
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

/// BP2's activation factor for hidden layer `l`: `delta <- delta * f'(Z(l))`,
/// given `f`, `delta(l)`, every layer's `Z`, `l` and the batch size. Tests
/// swap in the seed's "most common bug in the wild" (the derivative of
/// another layer) and planted wrong derivatives, to show the gradient check
/// catches them.
pub(crate) type Bp2Factor = fn(Activation, ArrayViewMut2<'_, f32>, &[Array2<f32>], usize, usize);

/// The correct factor: layer `l`'s own derivative at its own `Z(l)`.
pub(crate) fn bp2_factor(f: Activation, delta: ArrayViewMut2<'_, f32>, z: &[Array2<f32>], l: usize, batch: usize) {
    f.backward(delta, z[l].slice(s![..batch, ..]));
}

impl Mlp {
    /// A network with the given layer sizes (`[784, 128, 10]` is one hidden
    /// layer of 128): ReLU hidden layers with He-normal weights drawn from
    /// `rng`, an identity output layer, zero biases (the seed's network).
    ///
    /// ```
    /// use backprop_nn::Mlp;
    /// use backprop_tensor::Rng;
    /// let model = Mlp::new(&[784, 128, 10], &mut Rng::seed_from_u64(42)).unwrap();
    /// assert_eq!(model.n_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
    /// let probabilities = model.predict_proba(ndarray::Array2::zeros((3, 784)).view());
    /// assert_eq!(probabilities.dim(), (3, 10));
    /// ```
    ///
    /// # Errors
    /// Fewer than two sizes, or a size of zero.
    pub fn new(sizes: &[usize], rng: &mut Rng) -> Result<Self> {
        Self::with(sizes, Activation::Relu, Init::HeNormal, rng)
    }

    /// A network whose hidden layers use `activation`, weights drawn by
    /// `init` layer by layer from `rng`, and an identity output layer.
    ///
    /// # Errors
    /// Fewer than two sizes, a size of zero, or an activation with a
    /// non-finite parameter.
    pub fn with(sizes: &[usize], activation: Activation, init: Init, rng: &mut Rng) -> Result<Self> {
        validate_sizes(sizes)?;
        let last = sizes.len() - 2;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(l, p)| {
                let f = if l == last { Activation::Identity } else { activation };
                Dense::with(p[0], p[1], f, init, rng)
            })
            .collect();
        Self::from_layers(layers)
    }

    /// A network from existing layers (a checkpoint, an import), checking
    /// that they chain, that biases match, and that every value is finite.
    ///
    /// # Errors
    /// [`NnError::BadParameters`] naming the first bad layer.
    pub fn from_layers(mut layers: Vec<Dense>) -> Result<Self> {
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
            if let Activation::LeakyRelu { slope } = layer.activation
                && !slope.is_finite()
            {
                return bad(format!("leaky-relu slope {slope} is not finite"));
            }
        }
        layers.iter_mut().for_each(Dense::align);
        let norms = vec![None; layers.len()];
        Ok(Self { layers, norms })
    }

    /// Puts a batch normalisation (PyTorch's defaults but for `momentum`
    /// and `eps`) between E1 and E2 of every hidden layer.
    ///
    /// ```
    /// use backprop_nn::Mlp;
    /// use backprop_tensor::Rng;
    /// let mut model = Mlp::new(&[4, 8, 3], &mut Rng::seed_from_u64(0)).unwrap();
    /// model.add_batch_norm(0.1, 1e-5);
    /// assert!(model.norms()[0].is_some() && model.norms()[1].is_none());
    /// assert_eq!(model.n_parameters(), 4 * 8 + 8 + 2 * 8 + 8 * 3 + 3);
    /// ```
    pub fn add_batch_norm(&mut self, momentum: f32, eps: f32) {
        let hidden = self.layers.len() - 1;
        for (norm, layer) in self.norms.iter_mut().zip(&self.layers).take(hidden) {
            *norm = Some(BatchNorm::with(layer.n_out(), momentum, eps));
        }
    }

    /// Replaces the batch normalisations, one entry per layer (a
    /// checkpoint, an import).
    ///
    /// # Errors
    /// [`NnError::BadParameters`] for the wrong number of entries, one on
    /// the output layer, or one that does not fit its layer.
    pub fn set_norms(&mut self, norms: Vec<Option<BatchNorm>>) -> Result<()> {
        if norms.len() != self.layers.len() {
            return Err(NnError::BadParameters {
                layer: 0,
                reason: format!("{} batch normalisations for {} layers", norms.len(), self.layers.len()),
            });
        }
        let last = self.layers.len() - 1;
        for (l, norm) in norms.iter().enumerate() {
            if let Some(norm) = norm {
                let bad = |reason: String| Err(NnError::BadParameters { layer: l, reason });
                if l == last {
                    return bad("the output layer cannot be batch-normalised".into());
                }
                if let Err(e) = norm.validate(self.layers[l].n_out()) {
                    return bad(e.to_string());
                }
            }
        }
        self.norms = norms;
        Ok(())
    }

    /// Each layer's batch normalisation, if it has one.
    pub fn norms(&self) -> &[Option<BatchNorm>] {
        &self.norms
    }

    /// The batch normalisations, mutably (for optimisers).
    pub fn norms_mut(&mut self) -> &mut [Option<BatchNorm>] {
        &mut self.norms
    }

    /// Whether any layer is batch-normalised.
    pub fn has_batch_norm(&self) -> bool {
        self.norms.iter().any(Option::is_some)
    }

    /// Moves every batch normalisation's running averages towards the
    /// statistics of the last training-mode forward pass in `ws` (see
    /// [`Workspace::set_training`]); a training loop calls it after each
    /// step. Does nothing for a network without batch normalisation, after
    /// an evaluation-mode pass, or after a batch of one row (whose variance
    /// says nothing about the data's; PyTorch refuses such a batch, here an
    /// epoch's last batch may be one).
    pub fn update_batch_norm(&mut self, ws: &Workspace) {
        for (norm, cache) in self.norms.iter_mut().zip(&ws.norms) {
            if let (Some(norm), Some(cache)) = (norm, cache)
                && cache.training
                && cache.rows > 1
            {
                norm.update_running(cache);
            }
        }
    }

    /// The same function in evaluation mode without batch normalisation:
    /// each normalisation's affine map (running averages, `gamma`, `beta`)
    /// folded into the weights and bias before it, in `f64`, then rounded.
    /// For export to formats that have no batch normalisation.
    pub fn folded(&self) -> Mlp {
        let layers = self
            .layers
            .iter()
            .zip(&self.norms)
            .map(|(layer, norm)| match norm {
                None => layer.clone(),
                Some(norm) => {
                    let (scale, shift) = norm.eval_affine();
                    let mut layer = layer.clone();
                    for mut row in layer.w.rows_mut() {
                        ndarray::Zip::from(&mut row)
                            .and(&scale)
                            .for_each(|w, &s| *w = (f64::from(*w) * s) as f32);
                    }
                    ndarray::Zip::from(&mut layer.b)
                        .and(&scale)
                        .and(&shift)
                        .for_each(|b, &s, &t| *b = (f64::from(*b) * s + t) as f32);
                    layer
                }
            })
            .collect();
        Mlp {
            norms: vec![None; self.layers.len()],
            layers,
        }
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// The layers, mutably (for optimisers).
    pub fn layers_mut(&mut self) -> &mut [Dense] {
        &mut self.layers
    }

    /// The layers and the batch normalisations, mutably at once.
    pub(crate) fn parts_mut(&mut self) -> (&mut [Dense], &mut [Option<BatchNorm>]) {
        (&mut self.layers, &mut self.norms)
    }

    /// Layer sizes, `[n_inputs, hidden..., n_outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.n_inputs())
            .chain(self.layers.iter().map(Dense::n_out))
            .collect()
    }

    /// Each layer's activation, input first.
    pub fn activations(&self) -> Vec<Activation> {
        self.layers.iter().map(|l| l.activation).collect()
    }

    /// Width of the input.
    pub fn n_inputs(&self) -> usize {
        self.layers[0].n_in()
    }

    /// Width of the output: the number of classes, or of regression values.
    pub fn n_outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].n_out()
    }

    /// Number of trainable scalars (batch normalisation's `gamma` and
    /// `beta` included, its running averages not).
    pub fn n_parameters(&self) -> usize {
        let norms: usize = self.norms.iter().flatten().map(|n| 2 * n.len()).sum();
        norms + self.layers.iter().map(|l| l.w.len() + l.b.len()).sum::<usize>()
    }

    /// The forward pass (E1, E2) for `x: (B, n_inputs)`; returns the output
    /// `A(L): (B, n_outputs)` (the logits, for an identity output layer), a
    /// view into `ws`. A mostly-zero `x` is compressed first, so the first
    /// product skips the zeros.
    ///
    /// # Panics
    /// If `ws` was made for other sizes, `B > ws.max_batch()`, or `x` has the
    /// wrong width.
    #[track_caller]
    pub fn forward<'w>(&self, x: ArrayView2<'_, f32>, ws: &'w mut Workspace) -> ArrayView2<'w, f32> {
        let input = self.compress(x, ws);
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

    /// Checks `x` against `ws` and compresses it into the workspace when it
    /// is sparse enough to pay.
    #[track_caller]
    fn compress<'a>(&self, x: ArrayView2<'a, f32>, ws: &mut Workspace) -> Own<'a> {
        self.check(Input::Dense(x), ws);
        ws.input.fill(x);
        if ws.input.density() < SPARSE_INPUT_DENSITY {
            Own::Compressed
        } else {
            Own::Given(Input::Dense(x))
        }
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

    /// Whether layer `l` writes `A(l)`: every hidden layer, and the output
    /// layer unless its activation is the identity (then `A(L) = Z(L)`).
    fn writes_a(&self, l: usize) -> bool {
        l + 1 < self.layers.len() || self.layers[l].activation != Activation::Identity
    }

    fn forward_from<'w>(&self, x: Own<'_>, ws: &'w mut Workspace) -> ArrayView2<'w, f32> {
        let batch = x.rows(ws);
        ws.fit_norms(&self.norms);
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = ws.a.split_at_mut(l);
            let a_prev = match l {
                0 => x.input(&ws.input),
                _ => Input::Dense(done[l - 1].slice(s![..batch, ..])),
            };
            let mut z = ws.z[l].slice_mut(s![..batch, ..]);
            let a = self.writes_a(l).then(|| rest[0].slice_mut(s![..batch, ..]));
            match (&self.norms[l], &mut ws.norms[l]) {
                (Some(norm), Some(cache)) => {
                    // E1, then Y(l) = BN(Z(l)) in place of Z(l), then E2 on Y(l).
                    layer.forward(&ws.pool, a_prev, z.view_mut(), None);
                    cache.training = ws.training;
                    norm.forward(z.view_mut(), cache);
                    if let Some(a) = a {
                        layer.activation.forward(z.view(), a);
                    }
                }
                _ => layer.forward(&ws.pool, a_prev, z, a),
            }
            // Dropout on a hidden layer's output: A(l) <- A(l) * mask(l).
            if ws.dropout_on
                && let Some(Some(mask)) = ws.masks.get(l)
            {
                rest[0]
                    .slice_mut(s![..batch, ..])
                    .zip_mut_with(&mask.slice(s![..batch, ..]), |a, &m| *a *= m);
            }
        }
        ws.output(self.writes_a(self.layers.len() - 1), batch)
    }

    /// Forward, the cross-entropy loss, then backward: returns the mean loss
    /// of the batch and overwrites `grads` with its gradients (batch
    /// normalisation: see [`Mlp::loss_backward`]).
    ///
    /// # Panics
    /// As [`Mlp::forward`], or if `labels.len()` differs from the batch size
    /// or a label is out of range.
    #[track_caller]
    pub fn backward(&self, x: ArrayView2<'_, f32>, labels: &[usize], ws: &mut Workspace, grads: &mut Gradients) -> f32 {
        let input = self.compress(x, ws);
        self.backward_from(
            input,
            Loss::CrossEntropy,
            Targets::Classes(labels),
            ws,
            grads,
            bp2_factor,
        )
    }

    /// [`Mlp::backward`] for an input exactly as given (see
    /// [`Mlp::forward_input`]).
    ///
    /// # Panics
    /// As [`Mlp::backward`].
    #[track_caller]
    pub fn backward_input(&self, x: Input<'_>, labels: &[usize], ws: &mut Workspace, grads: &mut Gradients) -> f32 {
        self.loss_backward(x, Loss::CrossEntropy, Targets::Classes(labels), ws, grads)
    }

    /// Forward, `loss` against `targets` (BP1), then backward (BP2-BP4):
    /// returns the mean loss of the batch and overwrites `grads`.
    ///
    /// A batch-normalised network normalises with the batch's own
    /// statistics only in a workspace set to training
    /// ([`Workspace::set_training`]); a training loop then calls
    /// [`Mlp::update_batch_norm`] after each step, as [`crate::Trainer`]
    /// does.
    ///
    /// # Panics
    /// As [`Mlp::forward`], or if the targets do not fit the loss and the
    /// batch.
    #[track_caller]
    pub fn loss_backward(
        &self,
        x: Input<'_>,
        loss: Loss,
        targets: Targets<'_>,
        ws: &mut Workspace,
        grads: &mut Gradients,
    ) -> f32 {
        self.check(x, ws);
        assert_eq!(
            targets.len(),
            x.rows(),
            "loss_backward: targets and inputs differ in rows"
        );
        self.backward_from(Own::Given(x), loss, targets, ws, grads, bp2_factor)
    }

    /// The output `A(L)` of the last forward pass over `batch` rows in `ws`,
    /// and the buffer where a loss of one's own writes `delta(L) =
    /// dL/dA(L)` before [`Mlp::backward_from_delta`].
    ///
    /// # Panics
    /// If `ws` was made for another network or `batch > ws.max_batch()`.
    #[track_caller]
    pub fn output_and_delta<'w>(
        &self,
        ws: &'w mut Workspace,
        batch: usize,
    ) -> (ArrayView2<'w, f32>, ArrayViewMut2<'w, f32>) {
        assert!(
            ws.fits(&self.layers),
            "output_and_delta: workspace was made for another network"
        );
        assert!(
            batch <= ws.max_batch,
            "output_and_delta: batch of {batch} exceeds the workspace's {}",
            ws.max_batch
        );
        ws.output_and_delta(!self.writes_a(self.layers.len() - 1), batch)
    }

    /// Backward from a `delta(L) = dL/dA(L)` the caller wrote into
    /// [`Mlp::output_and_delta`] after [`Mlp::forward_input`] on the same
    /// `x`: for losses of one's own. Overwrites `grads`.
    ///
    /// # Panics
    /// As [`Mlp::forward`].
    #[track_caller]
    pub fn backward_from_delta(&self, x: Input<'_>, ws: &mut Workspace, grads: &mut Gradients) {
        self.check(x, ws);
        self.backpropagate(Own::Given(x), ws, grads, bp2_factor);
    }

    /// Forward, BP1 from `loss`, and backward, with BP2's activation factor
    /// `bp2` ([`bp2_factor`] for the correct algorithm).
    pub(crate) fn backward_from(
        &self,
        x: Own<'_>,
        loss: Loss,
        targets: Targets<'_>,
        ws: &mut Workspace,
        grads: &mut Gradients,
        bp2: Bp2Factor,
    ) -> f32 {
        let batch = x.rows(ws);
        self.forward_from(x, ws);
        let (output, delta) = ws.output_and_delta(!self.writes_a(self.layers.len() - 1), batch);
        let value = loss.forward_backward(output, targets, delta);
        self.backpropagate(x, ws, grads, bp2);
        value
    }

    /// BP2-BP4 from `delta(L) = dL/dA(L)` in the workspace. Dropout masks
    /// drawn for this pass are used here for the last time.
    fn backpropagate(&self, x: Own<'_>, ws: &mut Workspace, grads: &mut Gradients, bp2: Bp2Factor) {
        self.backpropagate_once(x, ws, grads, bp2);
        ws.dropout_on = false;
    }

    fn backpropagate_once(&self, x: Own<'_>, ws: &mut Workspace, grads: &mut Gradients, bp2: Bp2Factor) {
        let batch = x.rows(ws);
        let last = self.layers.len() - 1;
        // dL/dZ(L) = dL/dA(L) * f'(Z(L)); nothing to do for an identity output.
        self.layers[last].activation.backward(
            ws.delta[last].slice_mut(s![..batch, ..]),
            ws.z[last].slice(s![..batch, ..]),
        );
        for l in (0..=last).rev() {
            let a_prev = match l {
                0 => x.input(&ws.input),
                _ => Input::Dense(ws.a[l - 1].slice(s![..batch, ..])),
            };
            let (below, here) = ws.delta.split_at_mut(l);
            if let (Some(norm), Some(cache)) = (&self.norms[l], &mut ws.norms[l]) {
                // dL/dY(l) -> dL/dZ(l), and dL/dgamma(l), dL/dbeta(l).
                norm.backward(
                    here[0].slice_mut(s![..batch, ..]),
                    cache,
                    grads.dgamma[l].view_mut(),
                    grads.dbeta[l].view_mut(),
                );
            }
            let delta = here[0].slice(s![..batch, ..]);
            // BP3 and BP4 for layer l.
            Dense::backward(&ws.pool, a_prev, delta, grads.dw[l].view_mut(), grads.db[l].view_mut());
            if l > 0 {
                // BP2: delta(l-1) = (delta(l) W(l)^T) * f'(Z(l-1)).
                let mut delta_below = below[l - 1].slice_mut(s![..batch, ..]);
                let w = self.layers[l].w.view();
                gemm_transposed_b_with(
                    &ws.pool,
                    1.0,
                    delta,
                    w,
                    &mut ws.wt[l - 1].view_mut(),
                    0.0,
                    &mut delta_below,
                );
                // Through dropout: dL/dA(l-1) before the mask is the mask times it.
                if ws.dropout_on
                    && let Some(Some(mask)) = ws.masks.get(l - 1)
                {
                    delta_below.zip_mut_with(&mask.slice(s![..batch, ..]), |d, &m| *d *= m);
                }
                bp2(self.layers[l - 1].activation, delta_below, &ws.z, l - 1, batch);
            }
        }
    }

    /// The outputs `A(L)` for any number of rows of `x`, computed in chunks
    /// on the calling thread: the logits of a classifier, the predicted
    /// values of a regression.
    ///
    /// # Panics
    /// If `x` does not have [`Mlp::n_inputs`] columns.
    #[track_caller]
    pub fn predict_outputs(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.n_inputs(),
            "predict: x has {} columns, the network takes {}",
            x.ncols(),
            self.n_inputs()
        );
        const CHUNK: usize = 256;
        let mut out = Array2::zeros((x.nrows(), self.n_outputs()));
        let mut ws = Workspace::new(&self.sizes(), CHUNK.min(x.nrows()).max(1));
        for (x, mut out) in x
            .axis_chunks_iter(ndarray::Axis(0), CHUNK)
            .zip(out.axis_chunks_iter_mut(ndarray::Axis(0), CHUNK))
        {
            out.assign(&self.forward(x, &mut ws));
        }
        out
    }

    /// Class probabilities, the softmax of the outputs (row maximum
    /// subtracted first), for any number of rows of `x`.
    ///
    /// # Panics
    /// As [`Mlp::predict_outputs`].
    #[track_caller]
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let logits = self.predict_outputs(x);
        let mut p = Array2::zeros(logits.dim());
        softmax_rows(logits.view(), p.view_mut());
        p
    }

    /// The most probable class of each row of `x`.
    ///
    /// # Panics
    /// As [`Mlp::predict_outputs`].
    #[track_caller]
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Vec<usize> {
        let logits = self.predict_outputs(x);
        let mut classes = vec![0; logits.nrows()];
        backprop_tensor::argmax_rows(logits.view(), &mut classes);
        classes
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
