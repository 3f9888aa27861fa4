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


# The MatMuls in the order `bench/int8_sensitivity.py` ranked them (score error when quantised
# alone, per unit of compute; shipped head default-logreg-seed0, 1,200 training-split prompts):
# the attention values and the FFN outputs of the early layers first.
_RANKED = (
    "layer.4/attention/self/value",
    "layer.3/attention/self/value",
    "layer.5/attention/self/value",
    "layer.2/attention/self/value",
    "layer.2/output/dense",
    "layer.0/output/dense",
    "layer.1/attention/self/value",
    "layer.1/output/dense",
    "layer.5/attention/output/dense",
    "layer.3/intermediate/dense",
    "layer.1/intermediate/dense",
    "layer.2/intermediate/dense",
)


def _top(k: int) -> Int8Recipe:
    return Int8Recipe(f"fp32-top{k}", check_matmuls(_RANKED[:k]))


# `all`: every MatMul int8 (fastest; 98.1% decision agreement with fp32 on the test split).
# `fp32-top<k>`: the k most sensitive MatMuls kept fp32. The default is the smallest k whose
# agreement on the training sample reached 99% at batch 1 and 32 (k=8: 99.00/98.95%, k=10:
# 99.11/99.07%); on the test split `python bench/backend_agreement.py` then measured 99.11%
# (batch 1) and 99.07% (batch 32), APGR within 0.002, at ~1.5x fp32's speed and ~75% of `all`'s.
# `fp32-top12` (training 99.28/99.26%) is the one with more margin, ~7% slower again.
INT8_RECIPES: dict[str, Int8Recipe] = {
    "all": Int8Recipe("all"),
    "fp32-top10": _top(10),
    "fp32-top12": _top(12),
}
DEFAULT_INT8_RECIPE = "fp32-top10"


def int8_recipe(name: str) -> Int8Recipe:
    """The recipe called `name`, or a ConfigError naming the field and the known recipes."""
    try:
        return INT8_RECIPES[name]
    except KeyError:
        raise ConfigError(
            f"The 'embedder.int8_recipe' parameter must be one of {sorted(INT8_RECIPES)}. "
            f"Got {name!r} instead."
        ) from None
