"""What a method spec declares beside its options: the controls a comparison runs, and a modulation window."""

import pydantic
import pytest

from armscope.catalog import build_catalog
from armscope.plugins import METHODS
from armscope.specs import Control, MethodSpec, ModulationWindow

pytestmark = pytest.mark.unit


class Options(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    strength: float = 1.0


def spec(*controls: Control) -> MethodSpec:
    return MethodSpec("toy", "nowhere:Toy", Options, "A toy.", controls=controls)


def test_a_control_with_an_option_its_method_does_not_have_is_refused_at_registration():
    with pytest.raises(pydantic.ValidationError, match="strenght"):
        spec(Control("off", {"strenght": 0.0}))


def test_a_control_label_must_fit_in_a_run_name():
    with pytest.raises(ValueError, match="lower-case letters"):
        Control("No Reweight", {})


def test_the_catalog_publishes_arm_s_control_without_re_weighting():
    (control,) = build_catalog()["methods"]["arm"]["controls"]
    assert control["label"] == "no-reweight" and control["options"] == {"reweight": False}
    assert spec(Control("off", {"strength": 0.0})).controls[0].options == {"strength": 0.0}


@pytest.mark.parametrize("method", [s.name for s in METHODS.entries() if issubclass(s.options, ModulationWindow)])
def test_a_modulation_window_that_ends_before_it_starts_is_refused(method):
    with pytest.raises(pydantic.ValidationError, match="modulation_end must not be before modulation_start"):
        METHODS.get(method).options(modulation_start=5, modulation_end=4)
