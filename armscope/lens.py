"""The contribution lens every run is measured with: ARM's terms defined on the model's predictions alone.

ARM scores modality m by Φ_m = p_f NMI(h_m; f) + p_-m (NMI(h_m; f) - NCMI(h_m; f | h_-m))
(ARM.md §1). Its training step takes f, p_f and p_-m from its own head (probe P, classifier C on
raw features), which no other method has, and the first lens for other methods stood in with
other pieces (the fusion head with m zeroed), so curves of different methods sat on different
axes. Here each piece is defined from what every model has, the features and the evaluation-time
prediction, identically for every method, ARM included:

- f is a fixed random projection of the concatenated features, drawn once from its own seed
  (the shape of ARM's untrained probe P, without its bias), so the same for every run of a shape;
- p_f is the mean true-class probability of the fused prediction; p_-m that of the prediction with
  m's features zeroed, the masking the masked accuracies and Shapley values use;
- h_-m is the element-wise mean of the other modalities' features, as in ARM;
- the estimator is ``debiased`` with ARM's bin counts and weight bounds, because the validation
  set holds many more elements than a training step: with the plug-in, the bias a score carries
  would depend on the split's size and the feature width rather than on the model.

ARM's own per-step terms are logged apart, as what training applied (``arm_train_*``).

``measure`` (from ``armscope.lens_measure``) takes this lens, and every other per-epoch measure of
our runs, to any PyTorch model through the model's own prediction with modalities left out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from armscope.arm_terms import ARMTerms, arm_terms
from armscope.lazy import exports
from armscope.models.heads import Lens, rest_means

ESTIMATOR = "debiased"
NMI_BINS = 30
NCMI_BINS = 2
W_MIN = 0.1
W_MAX = 10.0
PROBE_SEED = 1234

# ``measure`` lives in ``armscope.lens_measure``, which imports this module (as our runs' evaluation, sharing its
# tally, does): it is looked up there on first use, where importing it here would make a cycle.
__getattr__ = exports(__name__, {"measure": "armscope.lens_measure"})


def lens_probe(width: int, feature_dim: int, device: torch.device) -> Tensor:
    """The fixed projection f = probe(fused features, by default the concatenated ones): uniform in ±1/sqrt(width),
    from its own generator.

    Its own generator leaves the global random stream, and so training, untouched.
    """
    return _probe(width, feature_dim).to(device)


@functools.lru_cache(maxsize=8)
def _probe(width: int, feature_dim: int) -> Tensor:
    generator = torch.Generator().manual_seed(PROBE_SEED)
    bound = 1.0 / math.sqrt(width)
    return (torch.rand(feature_dim, width, generator=generator) * 2 - 1) * bound


def common_lens(
    feats: Mapping[str, Tensor],
    order: Sequence[str],
    fused_logits: Tensor,
    without: Mapping[str, Tensor],
    fused: Tensor | None = None,
) -> Lens:
    """The lens's pieces from the features (in ``order``) and the predictions: fused, and ``without`` m per m.

    f projects ``fused``, the representation the classifier reads; by default the concatenated
    features, which is what our concat-fusion models' classifiers read.
    """
    joined = torch.cat([feats[m] for m in order], dim=1) if fused is None else fused
    probe = lens_probe(joined.shape[1], feats[order[0]].shape[1], joined.device)
    return Lens(
        probe=joined @ probe.T,
        fused_logits=fused_logits,
        rest_logits={m: without[m] for m in order},
        rest_features=rest_means({m: feats[m] for m in order}),
    )


def lens_terms(
    feats: Mapping[str, Tensor],
    order: Sequence[str],
    fused_logits: Tensor,
    without: Mapping[str, Tensor],
    labels: Tensor,
    *,
    fused: Tensor | None = None,
    estimator: str = ESTIMATOR,
) -> ARMTerms:
    """NMI, NCMI, score Φ and weight w per modality, in ``order``, as every run's validation lens measures them.

    ``fused`` and ``estimator`` are for ``measure`` on a model of the user's own (see ``common_lens``).
    """
    ordered = {m: feats[m] for m in order}
    return arm_terms(
        ordered,
        common_lens(ordered, order, fused_logits, without, fused),
        labels,
        estimator=estimator,
        nmi_bins=NMI_BINS,
        ncmi_bins=NCMI_BINS,
        w_min=W_MIN,
        w_max=W_MAX,
    )
