"""ARM's weights on one trained checkpoint at batch 64 and at batch 512, with each estimator and weighting.

    python bench/batch_weights.py

Trains one ARM run (debiased estimator) per data set, then passes its training split's features in
batches of 64 and of 512 through ARM's own step (its probe and classifier, as training does), once
weighing each batch by its own scores (``weighting: step``, the published rule) and once by the
moving average of the scores so far (``weighting: running``, decay 0.9, from a fresh average): the
mean over batches of the weights each would apply, the weights of the mean scores, the mean score
and its spread over batches, and how many batches a guard reset or clamped. If the weights depended
on the model only, each estimator's and weighting's rows for 64 and 512 would agree.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from armscope.arm_terms import SCORE, STEP_STATS, arm_step, asymmetric_weights, running_scores  # noqa: E402
from armscope.config import RunConfig  # noqa: E402
from armscope.data.base import build_dataset  # noqa: E402
from armscope.dominance import encode_split  # noqa: E402
from armscope.methods.base import build_method  # noqa: E402
from armscope.rundir import RunDir  # noqa: E402
from armscope.train import build_model, train  # noqa: E402

CHECKPOINTS: list[tuple[str, dict[str, Any]]] = [
    ("synthetic-shift, 4,000 samples, d=64", {
        "dataset": "synthetic-shift", "dataset_options": {"n_samples": 4000, "dims": 16}, "epochs": 4,
        "model_options": {"feature_dim": 64, "encoder": {"name": "mlp", "hidden": [64]}},
    }),
    ("uci-mfeat (zer, fac), d=64", {"dataset": "uci-mfeat", "dataset_options": {"views": ["zer", "fac"]}, "epochs": 30}),
]


def trained(raw: dict[str, Any], out: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor, Any]:
    config = RunConfig.model_validate({**raw, "method": "arm", "method_options": {"estimator": "debiased"},
                                       "device": "cpu"})
    result = train(config, out)
    if result.status != "succeeded":
        raise RuntimeError(f"the checkpoint's run {result.status}: {result.error}")
    bundle = build_dataset(config.dataset, config.parsed_dataset_options, config.seed)
    options = config.parsed_model_options
    method = build_method(config.method, config.parsed_method_options, bundle.modalities, bundle.n_classes,
                          options.feature_dim)
    model = build_model(bundle, method, options)
    model.load_state_dict(RunDir(out).load_checkpoint()["model"])
    model.eval()
    feats, labels = encode_split(model, bundle.train, 512, torch.device("cpu"))
    return feats, labels, model.head


def row(feats: dict[str, torch.Tensor], labels: torch.Tensor, head: Any, estimator: str, weighting: str,
        batch: int) -> str:
    weights, scores, guarded = [], [], 0
    running = running_scores(len(feats)) if weighting == "running" else None
    for start in range(0, labels.numel() // batch * batch, batch):
        part = {m: f[start:start + batch] for m, f in feats.items()}
        stats = torch.zeros(STEP_STATS, len(feats), dtype=torch.float64)
        weight, guard = arm_step(part, head, labels[start:start + batch], stats, ema_decay=0.99, estimator=estimator,
                                 running=running, score_decay=0.9, nmi_bins=30, ncmi_bins=2, w_min=0.1, w_max=10.0)
        weights.append(weight.double())
        scores.append(stats[SCORE])
        guarded += int(guard.item() > 0)
    w, s = torch.stack(weights), torch.stack(scores)
    of_mean = asymmetric_weights(s.mean(0), 0.1, 10.0)[0]

    def pair(values: torch.Tensor, fmt: str) -> str:
        return " / ".join(format(v, fmt) for v in values.tolist())

    return (f"| {estimator} | {weighting} | {batch} | {batch * feats[head.modalities[0]].shape[1]:,} "
            f"| {pair(w.mean(0), '.3f')} | {pair(of_mean, '.3f')} | {pair(s.mean(0), '.2e')} | {pair(s.std(0), '.1e')} "
            f"| {guarded}/{len(w)} |")


def main() -> None:
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, raw) in enumerate(CHECKPOINTS):
            feats, labels, head = trained(raw, Path(tmp) / f"run-{i}")
            names = " / ".join(head.modalities)
            print(f"\n{label}: {labels.numel():,} training samples; values are {names}\n")
            print("| estimator | weighting | batch | elements | mean applied w | w of the mean Φ | mean Φ "
                  "| sd Φ over batches | guarded batches |")
            print("|---|---|---|---|---|---|---|---|---|")
            for estimator in ("plugin", "debiased"):
                for weighting in ("step", "running"):
                    for batch in (64, 512):
                        print(row(feats, labels, head, estimator, weighting, batch))


if __name__ == "__main__":
    main()
