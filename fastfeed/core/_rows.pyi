from collections.abc import Iterable
from typing import Any

import numpy as np

# 10 ** FP_DECIMALS computed in C: a float at runtime (1e8, exact).
FP_SCALE: float
FP_NONE_VALUE: int
TRADE_DTYPE: np.dtype[Any]
DEPTH_DTYPE: np.dtype[Any]
TICKER_DTYPE: np.dtype[Any]
PARTIAL_DTYPE: np.dtype[Any]

def struct_dtype(fields: Iterable[tuple[str, str, int]], itemsize: int) -> np.dtype[Any]: ...
