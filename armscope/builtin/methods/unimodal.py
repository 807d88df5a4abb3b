"""``unimodal``: one modality alone, the line a modality's masked accuracy inside a fused model is judged against."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from armscope.specs import MethodSpec


class UnimodalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: str | None = Field(
        None, description="The modality to train on; empty means the data set's first modality."
    )

    def check_modalities(self, modalities: list[str]) -> tuple[tuple[str, ...], str] | None:
        if self.modality is not None and self.modality not in modalities:
            return ("modality",), (
                f"{self.modality!r} is not a modality of this data set; "
                f"choose from: {', '.join(modalities)}"
            )
        return None


SPECS = [
    MethodSpec(
        "unimodal",
        "armscope.methods.unimodal:Unimodal",
        UnimodalOptions,
        "Train one modality alone (the others are zeroed at the fusion input).",
    )
]
