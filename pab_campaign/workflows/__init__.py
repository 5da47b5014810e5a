"""Work that needs both halves: checkpoints and models from `training`, statistics and outputs from
`analysis`. The one room allowed to import both (import-linter checks it); the command line calls it
lazily, so only the commands that need torch import it.

- `modeldiff`: TRAK attribution scores of two algorithms' checkpoints (cached beside their request),
  the residual PCA over them, and the counterfactual test of a transformation.
"""
