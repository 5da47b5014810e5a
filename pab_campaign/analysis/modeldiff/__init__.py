"""ModelDiff on precomputed attribution scores (numpy only): `residual_pca` (the distinguishing
directions and what they single out), `algorithms` (the two sides' runs chosen by filters), `outputs`
(score cache, directions, image grids)."""
