"""The specs of the plugins armscope ships: one torch-free module per plugin, found by ``armscope.plugins``.

``methods/``, ``datasets/`` and ``encoders/`` each hold modules with a
``SPECS`` list; a module whose name starts with ``_`` holds shared pieces and
is not searched. A spec names its training code (``armscope.methods``,
``armscope.data``, ``armscope.models``) by reference, loaded only when a run
is built.
"""
