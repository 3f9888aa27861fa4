"""Named int8 recipes for the ONNX encoder: which weight MatMuls stay fp32.

Dynamic int8 quantises every weight MatMul of the six transformer layers (36 of them). A few are
far more sensitive than the rest; keeping those in fp32 buys back most of the accuracy for a
fraction of the speed. A recipe names those MatMuls by their place in the exported graph
(``layer.<i>/<module path>``, e.g. ``layer.5/output/dense``); `bench/int8_sensitivity.py`
measures every MatMul on training-split texts and proposes the list. No heavy imports here: the
config validates `embedder.int8_recipe` against this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.errors import ConfigError

LAYERS = 6
# The weight MatMuls of one BERT layer, in graph order, as module paths below `layer.<i>/`.
LAYER_MATMULS = (
    "attention/self/query",
    "attention/self/key",
    "attention/self/value",
    "attention/output/dense",
    "intermediate/dense",
    "output/dense",
)
GRAPH_PREFIX = "/model/encoder/"


@dataclass(frozen=True)
class Int8Recipe:
    """A name and the weight MatMuls (``layer.<i>/<module path>``) kept in fp32."""

    name: str
    fp32_matmuls: tuple[str, ...] = ()

    def node_names(self) -> list[str]:
        """The ONNX node names of the fp32 MatMuls, as `torch.onnx.export` names them."""
        return [f"{GRAPH_PREFIX}{m}/MatMul" for m in self.fp32_matmuls]


def all_matmuls() -> list[str]:
    """Every weight MatMul of the encoder, ``layer.<i>/<module path>``, in graph order."""
    return [f"layer.{i}/{m}" for i in range(LAYERS) for m in LAYER_MATMULS]


def check_matmuls(matmuls: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The names, unchanged, if each is one of the encoder's weight MatMuls; else ConfigError."""
    known = set(all_matmuls())
    unknown = [m for m in matmuls if m not in known]
    if unknown:
        raise ConfigError(
            f"unknown encoder MatMuls {unknown}; names look like 'layer.5/output/dense' "
            f"(layer 0-{LAYERS - 1}, one of {list(LAYER_MATMULS)})"
        )
    return tuple(matmuls)


# Chosen by `bench/int8_sensitivity.py` (see its docstring and the README for the numbers).
INT8_RECIPES: dict[str, Int8Recipe] = {
    "all": Int8Recipe("all"),
}
DEFAULT_INT8_RECIPE = "all"


def int8_recipe(name: str) -> Int8Recipe:
    """The recipe called `name`, or a ConfigError naming the field and the known recipes."""
    try:
        return INT8_RECIPES[name]
    except KeyError:
        raise ConfigError(
            f"The 'embedder.int8_recipe' parameter must be one of {sorted(INT8_RECIPES)}. "
            f"Got {name!r} instead."
        ) from None
