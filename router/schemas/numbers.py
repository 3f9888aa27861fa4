"""Numbers the API takes: JSON numbers only, finite.

Pydantic's lax mode would read ``"0.5"`` as 0.5 and ``true`` as 1, and a float field takes
``Infinity`` and ``NaN`` (Python's JSON parser reads them): a quality, a cost or a token count
that is not a plain finite number is a 422 naming the field instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def a_number(value: Any) -> Any:
    """Refuse what lax mode would turn into a number: a string, bytes or a boolean."""
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    if isinstance(value, str | bytes | bytearray):
        raise ValueError("Input should be a number, not a string")
    return value


JsonNumber = BeforeValidator(a_number)
# at most 1e9 (USD, ms): sums over any number of calls stay finite (a 1e308 twice is inf)
Cost = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False), JsonNumber]
# at most 2**53 - 1: the largest integer JSON carries exactly, and the store's 64-bit columns hold
Count = Annotated[int, Field(ge=0, le=2**53 - 1), JsonNumber]
# a label or a share: a finite number in [0, 1]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False), JsonNumber]
