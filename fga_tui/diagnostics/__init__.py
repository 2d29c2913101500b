"""Numbers about a ``Trace``: how similar atoms are, how attention spreads, what the model reads.

Modules (numpy only; none imports torch or textual, so the headless report stays fast):

- :mod:`fga_tui.diagnostics.similarity`: per-stage similarity, over-smoothing and rank metrics
  (``stage_metrics`` fills the report's ``stages`` entries), orbit-aware summaries.
- :mod:`fga_tui.diagnostics.attention`: entropy, cross-atom divergence, argmax agreement and the
  shared-vs-atom-specific logit decomposition of the atom→token attention.
- :mod:`fga_tui.diagnostics.words`: WordPiece merging, stopwords and top words per atom.
- :mod:`fga_tui.diagnostics.separation`: the one separation measure (atoms of different
  elements, the same pairs at every stage).
- :mod:`fga_tui.diagnostics.evidence`, :mod:`~fga_tui.diagnostics.rules`,
  :mod:`~fga_tui.diagnostics.verdict`: what the verdict rules read, one rule per verdict code,
  and the engine that runs them and compares them with the model as trained.
- :mod:`fga_tui.diagnostics.severity`: the one ordered ``Severity`` (info < warning < error).

The formulas follow their papers (MAD: Chen et al. 2020; Dirichlet energy: Rusch et al. 2023;
effective rank: Roy & Vetterli 2007); each function documents its conventions for
degenerate inputs (one atom, identical atoms, one valid token). Nothing here returns NaN.
"""
