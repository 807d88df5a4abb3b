"""The base of every data set's options: what is known of a data set before it is loaded.

A config is checked and sized when it is validated, in the API process,
with no file read and no sample generated: the options name the modalities
where they can, and give the data's footprint (``armscope.budget``). Torch-free.
"""

from __future__ import annotations

from pydantic import BaseModel

from armscope.data.footprint import DataFootprint


class DatasetOptions(BaseModel):
    """Options of a data set; override ``modality_names`` and ``footprint`` where the options say them."""

    def modality_names(self) -> list[str] | None:
        """The modalities, when the options alone say them (else the files do)."""
        return None

    def footprint(self, batch_size: int) -> DataFootprint:
        """What the model is built for and the data holds in memory; here, for data only its files describe, a lower bound saying so."""
        named = self.modality_names()
        modalities = named or ["<modality 1>", "<modality 2>"]
        return DataFootprint(
            modalities=modalities,
            input_shapes={m: (1,) for m in modalities},
            n_classes=2,
            memory_bytes=0,
            memory_formula="the data's size is only known from its files",
            memory_field=("dataset_options",),
            notes=(
                "input sizes, class count and data size are only known from the data files; "
                "counted as 1 feature per modality and 2 classes" + ("" if named else ", for 2 modalities"),
            ),
        )
