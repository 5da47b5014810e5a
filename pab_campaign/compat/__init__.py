"""The Python APIs of the tools this project replaces, under their own names, so that their users
switch without rewriting: thin migration paths over our own parts.

- `mbe_eval`: mbe-eval's `MBEEvaluator` and `simulate_mbe_evaluation`, over `analysis.mbe`;
- `metric_audit`: mbe-eval's weight-spectrum functions (`sci_spectrum`, `NumpySCITracker`, ...) for
  torch models and plain numpy weight matrices, over the spectra probe;
- `pabkit`: pabkit's `ProcessAwareBenchmark`, `track_learning_curve` and its plots, over the Tracker
  and the trajectory summary;
- `modeldiff`: ModelDiff's `ModelDiff` for any two `nn.Module` factories, checkpoint lists and
  loaders, over the TRAK attribution and the residual PCA.

Nothing in the package imports this room (an import-linter contract checks it); it may import
training, analysis and workflows.
"""
