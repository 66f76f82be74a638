"""`method.output_encoder`: an EMA method delivers its student or its teacher's copy of the student's encoder, and
its probes (`embed`) read the same weights that the run saves (`delivered_encoder`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distributed_ssl.config import load_config
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.modalities.registry import build_modality

pytestmark = pytest.mark.usefixtures("one_thread")

RECIPES = Path(__file__).resolve().parents[1] / "jobs" / "configs"

DEBUG = ["modality.name=image", "model.encoder=vit_debug", "method.proj_hidden_dim=32", "method.proj_dim=16"]
METHODS = {
    "jepa": ["model.encoder=vit_debug", "modality.name=image", "method.predictor_dim=32", "method.predictor_depth=1"],
    "byol": [*DEBUG, "method.predictor_hidden_dim=32"],
    "dino": [*DEBUG, "method.dino_out_dim=32", "method.num_local_views=0"],
}


def _one_step(name: str, output: str):
    """The method after one AdamW step and one EMA update at momentum 0.5 (teacher half-way to the student)."""
    cfg = load_config(None, [f"method.name={name}", *METHODS[name], f"method.output_encoder={output}"])
    g = torch.Generator().manual_seed(0)
    views = build_modality(cfg).make_views(torch.rand(8, 3, 32, 32, generator=g), view_spec_for(cfg), g)
    torch.manual_seed(0)
    method = build_method(cfg)
    opt = torch.optim.AdamW(method.trainable_module().parameters(), lr=1e-2)
    method({k: torch.from_numpy(v) for k, v in views.items()})["loss"].backward()
    opt.step()
    method.apply_schedule("ema_momentum", 0.5)
    method.on_step_end(1)
    return method.eval()


def test_the_student_is_delivered_unless_a_recipe_asks_for_the_teacher():
    for name in METHODS:
        assert load_config(None, [f"method.name={name}"]).method.output_encoder == "student"
    assert load_config(RECIPES / "image_jepa_photos.yaml").method.output_encoder == "teacher"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_teacher_output_is_the_teachers_copy_of_the_encoder_and_probes_read_it(name):
    method = _one_step(name, "teacher")
    delivered = method.delivered_encoder()
    assert delivered is not method.encoder
    student_state, delivered_state = method.encoder.state_dict(), delivered.state_dict()
    assert student_state.keys() == delivered_state.keys()  # encoder.pt loads into a fresh encoder as before
    moved = [k for k in student_state if not torch.equal(student_state[k], delivered_state[k])]
    assert moved, "after a step at momentum 0.5 the teacher's encoder differs from the student's"
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(method.embed(x), delivered.embed(x))
        assert not torch.allclose(method.embed(x), method.encoder.embed(x))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_student_output_is_the_trained_encoder(name):
    method = _one_step(name, "student")
    assert method.delivered_encoder() is method.encoder
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(method.embed(x), method.encoder.embed(x))


def test_an_unknown_output_encoder_is_refused_naming_the_key():
    with pytest.raises(Exception, match="output_encoder"):
        load_config(None, ["method.name=jepa", "method.output_encoder=average"])
