"""Data sets: the builders (torch, numpy), and the light pieces their specs use (options, footprint, paths, errors).

Each data set is described by a spec in ``armscope.builtin.datasets`` that
names its builder here; importing this package loads no torch until a
training name below is used.
"""

from armscope.lazy import exports

__all__ = ["DATASETS", "DataError", "DatasetBundle", "DatasetOptions", "TensorSplit", "build_dataset"]
__getattr__ = exports(
    __name__,
    {
        "DATASETS": "armscope.plugins",
        "DataError": "armscope.data.errors",
        "DatasetOptions": "armscope.data.options",
        "DatasetBundle": "armscope.data.base",
        "TensorSplit": "armscope.data.base",
        "build_dataset": "armscope.data.base",
    },
)
