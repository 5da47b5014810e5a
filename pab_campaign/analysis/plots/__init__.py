"""Figures of a campaign (matplotlib, Agg backend), one function per figure, each returning the
Figure: `curves` (learning curves, class heatmap, robustness), `audit` (the MBE audit), `states`
(latent phases); `style` holds what they share (palette, units, PNG writing)."""
