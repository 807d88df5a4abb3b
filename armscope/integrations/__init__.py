"""Tracking from training code armscope did not write: a PyTorch Lightning callback (``integrations.lightning``,
needs the ``lightning`` extra) and a one-call hook for a hand-written loop (``integrations.loop``). Both log to a
run of ``armscope.init`` and take the contribution lens (``armscope.lens.measure``) every N epochs."""
