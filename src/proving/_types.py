"""Type aliases shared across stages (numpy arrays of one dtype)."""

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]
ArrayLike = float | npt.ArrayLike
