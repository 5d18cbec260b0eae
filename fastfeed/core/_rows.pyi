from collections.abc import Iterable

import numpy as np

FP_SCALE: int
FP_NONE_VALUE: int
TRADE_DTYPE: np.dtype
DEPTH_DTYPE: np.dtype
TICKER_DTYPE: np.dtype
PARTIAL_DTYPE: np.dtype

def struct_dtype(fields: Iterable[tuple[str, str, int]], itemsize: int) -> np.dtype: ...
