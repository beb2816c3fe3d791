from pathlib import Path

import pytest

from edgeir.compress.distill import DistillSettings
from edgeir.compress.recipe import DistillStage, Recipe, load_recipe, parse_recipe
from edgeir.errors import ConfigError

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))


def base(**over) -> dict:
    raw = {"name": "t", "teacher": "sr4x", "task": "sr",
           "stages": [{"kind": "distill", "method": "direct", "steps": 1, "gates": {"min_detail_kept": 0.9}}]}
    return {**raw, **over}


def stage(**over) -> dict:
    return base(stages=[{"kind": "distill", **over}])


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.teacher in ("sr4x", "deblur", "inpaint") and recipe.stages
    assert all(any(v is not None for v in s.gates.model_dump().values()) for s in recipe.stages), \
        "every shipped stage is gated"


def test_every_task_has_a_full_and_a_quick_recipe():
    names = {p.stem for p in RECIPES}
    assert {"sr4x", "deblur", "inpaint", "sr4x-quick", "deblur-quick", "inpaint-quick"} <= names


def test_a_valid_recipe_parses_into_typed_stages():
    r = parse_recipe(base())
    assert isinstance(r, Recipe)
    assert isinstance(r.stages[0], DistillStage) and isinstance(r.stages[0], DistillSettings)
    assert r.stages[0].gates.min_detail_kept == 0.9
    assert r.data.train == "builtin" and r.seed == 0


@pytest.mark.parametrize("raw, message", [
    (base(stepz=3), "stepz: Extra inputs are not permitted"),
    (stage(method="direct", itrations=5), "stages.0.distill.itrations: Extra inputs are not permitted"),
    (stage(steps="two"), "stages.0.distill.steps: Input should be a valid integer"),
    (stage(iterations=0), "stages.0.distill.iterations: Input should be greater than or equal to 1"),
    (stage(lr=-1), "stages.0.distill.lr: Input should be greater than 0"),
    (stage(method="magic"), "stages.0.distill.method: Input should be 'direct' or 'progressive'"),
    (stage(method="progressive", steps=1, teacher_steps=12),
     "teacher_steps (12) must be steps (1) times a power of two"),
    (stage(method="direct", steps=4, teacher_steps=4), "teacher_steps (4) must exceed steps (4)"),
    (stage(patch=[8, 128]), "stages.0.distill.patch.sizes.0: Input should be greater than or equal to 16"),
    (stage(patch="big"), "stages.0.distill.patch.size: Input should be a valid integer"),
    (stage(patch=[128, 128]), "patch: [128, 128] names a size twice"),
    (stage(patch=[]), "patch: name at least one size"),
    (base(stages=[{"kind": "prune", "recovery": {"patch": [96, 96]}}]),
     "stages.0.prune.recovery: Value error, patch: [96, 96] names a size twice"),
    (stage(gates={"min_detail_kept": 0.9, "max_detail_kept": 0.5}),
     "min_detail_kept (0.9) is above max_detail_kept (0.5)"),
    (stage(gates={"min_detial_kept": 0.9}), "stages.0.distill.gates.min_detial_kept: Extra inputs"),
    (base(stages=[{"kind": "shrink"}]), "stages.0: Input tag 'shrink' found using 'kind' does not match"),
    (base(stages=[]), "stages: List should have at least 1 item"),
    (base(task="denoise"), "task: Input should be 'sr', 'deblur' or 'inpaint'"),
    (base(data={"eval_size": 8}), "data.eval_size: Input should be greater than or equal to 16"),
    (base(targets={"latency_ms": 0}), "targets.latency_ms: Input should be greater than 0"),
    ({"name": "t", "task": "sr", "stages": [{"kind": "distill"}]}, "teacher: Field required"),
])
def test_mistakes_are_one_line_naming_the_field(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_recipe(raw, "r.yaml")
    text = str(e.value)
    assert message in text and text.startswith("r.yaml: ")
    assert "\n" not in text


@pytest.mark.parametrize("content, message", [
    ("name: [unclosed\n", "invalid YAML at line"),
    ("- just\n- a list\n", "expected a mapping of recipe fields, got list"),
    ("", "expected a mapping of recipe fields, got NoneType"),
    # a billion laughs: 600 bytes that stand for 10^9 values once their aliases are expanded
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
     + "name: *i\n", "expands to more than 100,000 values"),
    ("stages: &s [kind: distill, *s]\n", "refers to itself"),
])
def test_unreadable_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "r.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as e:
        load_recipe(path)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_shared_yaml_anchors_within_reason_still_load(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nteacher: sr4x\ntask: sr\nx-gates: &g {max_psnr_drop: 1.0}\nstages:\n"
                    "  - {kind: distill, gates: *g}\n  - {kind: quantize, gates: *g}\n")
    with pytest.raises(ConfigError, match="x-gates"):  # the anchor's own key is not a recipe field
        load_recipe(path)
    path.write_text("name: r\nteacher: sr4x\ntask: sr\nstages:\n  - {kind: distill, gates: &g {max_psnr_drop: 1.0}}"
                    "\n  - {kind: quantize, gates: *g}\n")
    recipe = load_recipe(path)
    assert [s.gates.max_psnr_drop for s in recipe.stages] == [1.0, 1.0]
