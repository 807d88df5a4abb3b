"""Data sets, each registered by name in its own module."""

from armscope.data import av_folder, cremad, features, kinetics_sounds, synthetic, uci_mfeat  # noqa: F401
from armscope.data.base import DATASETS, DataError, DatasetBundle, DatasetOptions, TensorSplit

__all__ = ["DATASETS", "DataError", "DatasetBundle", "DatasetOptions", "TensorSplit", "build_dataset"]


def build_dataset(name: str, options: dict, seed: int) -> DatasetBundle:
    entry = DATASETS.get(name)
    parsed = DATASETS.parse_options(name, options, "dataset_options")
    return entry.factory(parsed, seed)
