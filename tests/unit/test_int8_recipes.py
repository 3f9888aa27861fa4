"""int8 recipes: named lists of encoder MatMuls kept fp32, validated where the config is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import EmbedderConfig, load_settings
from router.config.int8_recipes import (
    DEFAULT_INT8_RECIPE,
    INT8_RECIPES,
    LAYERS,
    Int8Recipe,
    all_matmuls,
    check_matmuls,
    int8_recipe,
)
from router.errors import ConfigError


def test_the_encoder_has_36_weight_matmuls_named_by_layer_and_module() -> None:
    names = all_matmuls()
    assert len(names) == len(set(names)) == 6 * LAYERS
    assert names[0] == "layer.0/attention/self/query"
    assert names[-1] == "layer.5/output/dense"


def test_node_names_are_the_exported_graph_names() -> None:
    recipe = Int8Recipe("x", ("layer.5/output/dense", "layer.0/attention/self/value"))
    assert recipe.node_names() == ["/model/encoder/layer.5/output/dense/MatMul",
                                   "/model/encoder/layer.0/attention/self/value/MatMul"]


def test_every_shipped_recipe_names_real_matmuls_and_the_default_exists() -> None:
    assert DEFAULT_INT8_RECIPE in INT8_RECIPES
    assert INT8_RECIPES["all"].fp32_matmuls == ()
    for name, recipe in INT8_RECIPES.items():
        assert recipe.name == name
        assert check_matmuls(recipe.fp32_matmuls) == recipe.fp32_matmuls


@pytest.mark.parametrize("bad", ["layer.6/output/dense", "layer.0/output", "output/dense", ""])
def test_unknown_matmuls_are_refused_with_the_expected_form(bad: str) -> None:
    with pytest.raises(ConfigError, match="unknown encoder MatMuls .* 'layer.5/output/dense'"):
        check_matmuls(["layer.1/intermediate/dense", bad])


def test_an_unknown_recipe_is_refused_naming_the_field_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'embedder.int8_recipe' parameter must be one of "
                                          r"\[.*'all'.*\]. Got 'fastest' instead"):
        int8_recipe("fastest")
    assert int8_recipe("all") is INT8_RECIPES["all"]


def test_config_validates_the_recipe_name(tmp_path: Path) -> None:
    assert EmbedderConfig().int8_recipe == DEFAULT_INT8_RECIPE
    assert load_settings(None).embedder.int8_recipe == DEFAULT_INT8_RECIPE
    path = tmp_path / "c.yaml"
    path.write_text("safe_tier: a\ntiers: [{name: a, models: [m], input_price_per_m: 1, "
                    "output_price_per_m: 1, context_window: 9}]\n"
                    "embedder: {backend: onnx-int8, int8_recipe: fastest}\n")
    with pytest.raises(ConfigError, match=r"embedder.int8_recipe: .*must be one of .*'fastest'"):
        load_settings(path)
