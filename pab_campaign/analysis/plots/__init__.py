"""Figures shared by the analyses (matplotlib, Agg backend): `style` (palette, units, ranges, PNG
writing) and `curves` (learning curves, class heatmap, robustness). Each analysis room keeps its own
figures beside it (`mbe.figures`, `phases.figures`)."""
