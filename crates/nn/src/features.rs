//! [`Features`]: an in-memory table of `f32` inputs with class labels or
//! regression values, the simplest [`Examples`] source.

use crate::{Examples, NnError, Result, TargetShape, TargetsMut};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

/// Examples held in memory: `x` is `(n, n_features)`, one example per row.
///
/// ```
/// use backprop_nn::{Examples, Features, TargetShape};
/// use ndarray::array;
/// let data = Features::classification(array![[0.0, 1.0], [1.0, 0.0]], vec![1, 0], 2).unwrap();
/// assert_eq!((data.len(), data.n_features()), (2, 2));
/// assert_eq!(data.target_shape(), TargetShape::Classes(2));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    x: Array2<f32>,
    targets: Stored,
}

#[derive(Clone, Debug, PartialEq)]
enum Stored {
    Classes { labels: Vec<u32>, n_classes: usize },
    Values(Array2<f32>),
}

impl Features {
    /// Inputs `x` with one class label per row, each below `n_classes`.
    ///
    /// # Errors
    /// [`NnError::InvalidData`] when the counts disagree, a label is out of
    /// range, a value is not finite, or there are more than `u32::MAX` rows.
    pub fn classification(x: Array2<f32>, labels: Vec<usize>, n_classes: usize) -> Result<Self> {
        check_x(&x)?;
        if labels.len() != x.nrows() {
            return invalid(format!("{} rows of inputs but {} labels", x.nrows(), labels.len()));
        }
        if n_classes < 2 {
            return invalid(format!("a classifier needs at least 2 classes, got {n_classes}"));
        }
        if let Some((i, &label)) = labels.iter().enumerate().find(|&(_, &l)| l >= n_classes) {
            return invalid(format!("label {label} of row {i} is not below the {n_classes} classes"));
        }
        let labels = labels.into_iter().map(|l| l as u32).collect();
        Ok(Self {
            x,
            targets: Stored::Classes { labels, n_classes },
        })
    }

    /// Inputs `x` with a row of target values `y` per row (regression).
    ///
    /// # Errors
    /// [`NnError::InvalidData`] when the row counts disagree, `y` has no
    /// columns, or a value is not finite.
    pub fn regression(x: Array2<f32>, y: Array2<f32>) -> Result<Self> {
        check_x(&x)?;
        if y.nrows() != x.nrows() || y.ncols() == 0 {
            return invalid(format!(
                "{} rows of inputs but targets of shape {:?}",
                x.nrows(),
                y.dim()
            ));
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return invalid(format!("target value {i} is not finite"));
        }
        Ok(Self {
            x,
            targets: Stored::Values(y),
        })
    }

    /// The inputs, `(n, n_features)`.
    pub fn x(&self) -> ArrayView2<'_, f32> {
        self.x.view()
    }

    /// The class labels, when this is a classification table.
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.targets {
            Stored::Classes { labels, .. } => Some(labels),
            Stored::Values(_) => None,
        }
    }

    /// The target values, when this is a regression table.
    pub fn values(&self) -> Option<ArrayView2<'_, f32>> {
        match &self.targets {
            Stored::Classes { .. } => None,
            Stored::Values(y) => Some(y.view()),
        }
    }

    /// The rows `indices`, in that order, as a new table.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Features {
        Features {
            x: self.x.select(Axis(0), indices),
            targets: match &self.targets {
                Stored::Classes { labels, n_classes } => Stored::Classes {
                    labels: indices.iter().map(|&i| labels[i]).collect(),
                    n_classes: *n_classes,
                },
                Stored::Values(y) => Stored::Values(y.select(Axis(0), indices)),
            },
        }
    }

    /// Applies `x <- (x - mean) / scale` column by column, in place.
    ///
    /// # Panics
    /// If `mean` or `scale` is not `n_features` long.
    pub fn standardize(&mut self, mean: &[f32], scale: &[f32]) {
        assert!(mean.len() == self.x.ncols() && scale.len() == self.x.ncols());
        for mut row in self.x.rows_mut() {
            for ((x, m), s) in row.iter_mut().zip(mean).zip(scale) {
                *x = (*x - m) / s;
            }
        }
    }

    /// Each column's mean and standard deviation (population), with a
    /// deviation of 0 replaced by 1 so that constant columns stay finite.
    pub fn column_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.x.nrows().max(1) as f64;
        let mut mean = Vec::with_capacity(self.x.ncols());
        let mut scale = Vec::with_capacity(self.x.ncols());
        for col in self.x.columns() {
            let m = col.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = col.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / n;
            let sd = var.sqrt();
            mean.push(m as f32);
            scale.push(if sd > 0.0 && sd.is_finite() { sd as f32 } else { 1.0 });
        }
        (mean, scale)
    }
}

fn check_x(x: &Array2<f32>) -> Result<()> {
    if x.ncols() == 0 {
        return invalid("inputs have no columns".into());
    }
    if u32::try_from(x.nrows()).is_err() {
        return invalid(format!("{} rows exceed u32::MAX", x.nrows()));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return invalid(format!(
            "input value at row {}, column {} is not finite",
            i / x.ncols(),
            i % x.ncols()
        ));
    }
    Ok(())
}

fn invalid<T>(reason: String) -> Result<T> {
    Err(NnError::InvalidData { reason })
}

impl Examples for Features {
    fn len(&self) -> usize {
        self.x.nrows()
    }

    fn n_features(&self) -> usize {
        self.x.ncols()
    }

    fn target_shape(&self) -> TargetShape {
        match &self.targets {
            Stored::Classes { n_classes, .. } => TargetShape::Classes(*n_classes),
            Stored::Values(y) => TargetShape::Values(y.ncols()),
        }
    }

    fn gather(&self, indices: &[u32], mut x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
        for (mut row, &i) in x.rows_mut().into_iter().zip(indices) {
            row.assign(&self.x.row(i as usize));
        }
        match (y, &self.targets) {
            (TargetsMut::Classes(y), Stored::Classes { labels, .. }) => {
                for (y, &i) in y.iter_mut().zip(indices) {
                    *y = labels[i as usize] as usize;
                }
            }
            (TargetsMut::Values(mut y), Stored::Values(values)) => {
                for (mut row, &i) in y.rows_mut().into_iter().zip(indices) {
                    row.assign(&values.row(i as usize));
                }
            }
            _ => panic!("Features::gather: the targets buffer is of the other kind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn gathers_rows_and_targets_in_order() {
        let data = Features::classification(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], vec![0, 1, 2], 3).unwrap();
        let mut x = Array2::zeros((2, 2));
        let mut y = [9usize; 2];
        data.gather(&[2, 0], x.view_mut(), TargetsMut::Classes(&mut y));
        assert_eq!(x, array![[5.0, 6.0], [1.0, 2.0]]);
        assert_eq!(y, [2, 0]);
        let reg = Features::regression(array![[1.0], [2.0]], array![[10.0, 11.0], [20.0, 21.0]]).unwrap();
        let mut v = Array2::zeros((1, 2));
        reg.gather(&[1], Array2::zeros((1, 1)).view_mut(), TargetsMut::Values(v.view_mut()));
        assert_eq!(v, array![[20.0, 21.0]]);
    }

    #[test]
    fn bad_tables_are_refused() {
        let x = || array![[1.0f32], [2.0]];
        assert!(Features::classification(x(), vec![0], 2).is_err());
        assert!(Features::classification(x(), vec![0, 2], 2).is_err());
        assert!(Features::classification(x(), vec![0, 0], 1).is_err());
        assert!(Features::classification(array![[f32::NAN], [1.0]], vec![0, 1], 2).is_err());
        assert!(Features::regression(x(), array![[1.0]]).is_err());
        assert!(Features::regression(x(), array![[1.0], [f32::INFINITY]]).is_err());
    }

    #[test]
    fn standardize_gives_zero_mean_unit_variance() {
        let mut data = Features::regression(array![[1.0, 5.0], [3.0, 5.0]], array![[0.0], [1.0]]).unwrap();
        let (mean, scale) = data.column_stats();
        assert_eq!((mean.clone(), scale.clone()), (vec![2.0, 5.0], vec![1.0, 1.0]));
        data.standardize(&mean, &scale);
        assert_eq!(data.x(), array![[-1.0, 0.0], [1.0, 0.0]]);
    }
}
