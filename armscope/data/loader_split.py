"""``LoaderSplit``: the ``Split`` protocol over a map-style Dataset read by a torch DataLoader.

Data sets read from disk decode in worker processes, but the run must stay exactly
reproducible and resumable. So the DataLoader draws no random numbers itself:

- ``batches(shuffle=True)`` takes one epoch seed and the permutation from the engine's
  generator (checkpointed with the run, so a resume continues the same sequence);
- the dataset is indexed by keys ``(index, epoch_seed)``; it seeds its augmentation from
  the pair, so a sample's crop/flip are the same whichever worker loads it. Evaluation
  (and non-augmented splits) use the key ``(index, None)``: no randomness at all.

Loading errors travel back as ``LoadFailure`` values instead of exceptions: a DataLoader
re-raises a worker's exception wrapped in a traceback dump, and the engine should show the
loader's own message (which names the file) as a ``DataError``. With ``skip_bad`` the
failed samples are dropped from their batch instead and kept for ``drain_skipped``.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Iterator, Protocol, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

from armscope.data.base import Batch, DataError

SampleKey = tuple[int, int | None]
Sample = tuple[dict[str, torch.Tensor], int]
EPOCH_SEED_LIMIT = 2**62


@dataclass(frozen=True)
class LoadFailure:
    """A sample that could not be loaded; ``message`` names the file and the problem."""

    message: str


class KeyedDataset(Protocol):
    """A map-style dataset indexed by ``(index, augmentation seed or None)`` keys."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: SampleKey) -> Sample | LoadFailure: ...


@dataclass(frozen=True)
class Collated:
    """A batch of the samples that loaded (None if none did) and the failures' messages."""

    batch: Batch | None
    failures: list[str]


def collate(items: Sequence[Sample | LoadFailure], skip_bad: bool = False) -> Collated | LoadFailure:
    """Stack a batch; a failure is passed on (raised in the training process) unless skipped."""
    failures = [item.message for item in items if isinstance(item, LoadFailure)]
    if failures and not skip_bad:
        return LoadFailure(failures[0])
    good = [item for item in items if not isinstance(item, LoadFailure)]
    if not good:
        return Collated(None, failures)
    modalities = good[0][0]
    features = {m: torch.stack([item[0][m] for item in good]) for m in modalities}
    labels = torch.tensor([item[1] for item in good], dtype=torch.int64)
    return Collated((features, labels), failures)


class _PlannedBatches(Sampler[list[SampleKey]]):
    """Yields the batches planned by the latest ``batches`` call.

    The DataLoader (and its persistent workers) outlive one epoch, while batch size, order
    and seeds change per call; the main process asks the sampler anew at every iteration.
    """

    def __init__(self) -> None:
        self.plan: list[list[SampleKey]] = []

    def __iter__(self) -> Iterator[list[SampleKey]]:
        return iter(self.plan)

    def __len__(self) -> int:
        return len(self.plan)


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Load in the training process as DataLoader workers do, on one intra-op thread.

    Per-sample tensor work (STFT, stacking) is too small to gain from the intra-op pool,
    and on a busy machine waiting for the pool's threads made loading up to 10x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class LoaderSplit:
    """A split read through a DataLoader; ``dataset[(index, seed)]`` returns a sample or a LoadFailure.

    ``augment`` marks a training split: its shuffled epochs get seeds (random augmentation);
    read in order (``shuffle=False``, as evaluation does) it gets the fixed transforms.
    Only one iteration of a split may be in progress at a time.
    """

    def __init__(
        self,
        dataset: KeyedDataset,
        *,
        augment: bool,
        num_workers: int,
        pin_memory: bool,
        skip_bad: bool = False,
    ) -> None:
        self.dataset = dataset
        self.skip_bad = skip_bad
        self.skipped: list[str] = []
        self.size = len(dataset)
        self.augment = augment
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self._sampler = _PlannedBatches()
        self._loader: DataLoader | None = None

    def __len__(self) -> int:
        return self.size

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
        order: torch.Tensor | None = None,
    ) -> Iterator[Batch]:
        seed: int | None = None
        if shuffle:
            epoch_seed = int(torch.randint(EPOCH_SEED_LIMIT, (), generator=generator))
            if order is None:
                order = torch.randperm(self.size, generator=generator)
            seed = epoch_seed if self.augment else None
        indices = order.tolist() if order is not None else list(range(self.size))
        self._sampler.plan = [
            [(index, seed) for index in indices[start : start + batch_size]]
            for start in range(0, len(indices), batch_size)
        ]
        loaded = iter(self._data_loader())
        while True:
            with _single_threaded() if self.num_workers == 0 else nullcontext():
                batch = next(loaded, None)
            if batch is None:
                return
            if isinstance(batch, LoadFailure):
                del loaded  # the traceback keeps this frame, and must not keep the workers
                self.close()
                raise DataError(batch.message)
            self.skipped.extend(batch.failures)
            if batch.batch is not None:
                yield batch.batch

    def drain_skipped(self) -> list[str]:
        """Messages of the samples skipped since the last call (one per unreadable file)."""
        skipped, self.skipped = self.skipped, []
        return skipped

    def close(self) -> None:
        """Stop the worker processes now; a later ``batches`` call starts new ones.

        Dropping the only reference to the DataLoader shuts its workers down at once. Left
        to the cyclic garbage collector (an exception's traceback keeps ``batches``'s frame
        alive), torch's shutdown can wait 5 s per worker before killing it.
        """
        self._loader = None

    def _data_loader(self) -> DataLoader:
        if self._loader is None:
            self._loader = DataLoader(
                self.dataset,  # type: ignore[arg-type]  (map-style; keys come from the sampler)
                batch_sampler=self._sampler,
                num_workers=self.num_workers,
                collate_fn=partial(collate, skip_bad=self.skip_bad),
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
            )
        return self._loader
