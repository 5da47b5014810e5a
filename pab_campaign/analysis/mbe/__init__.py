"""The Marginal Baseline Eval: `rule` (mbe-eval's verdict and the effect classes), `arrays` (one test
on plain arrays, and mbe-eval's synthetic demo), `audit` (every candidate of a campaign, adjusted over
the family) and `figures`."""
