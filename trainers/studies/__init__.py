"""The studies behind the main result: why a heatmap's residual error grows with the stride, and which
design removes it. ``h3r-sweep --study convergence`` and ``--study representation``
(:mod:`.runner`); the error budget of a run (:mod:`.budget`); the designs (:mod:`.variants`); the
record, with paired statistics over seeds (:mod:`.report`)."""
