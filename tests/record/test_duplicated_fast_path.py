"""The sort-free path of derived._duplicated gives what a hash table gives, in and out of
key order (attempts' block and retransmission counts rest on it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.record.derived import _duplicated

pairs = st.lists(st.tuples(st.integers(0, 5), st.one_of(st.none(), st.integers(0, 6))),
                 max_size=60)


def expected(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({"k": keys, "v": values})
    return frame.duplicated().to_numpy(dtype=bool)


@settings(max_examples=200, deadline=None)
@given(pairs, st.booleans())
def test_same_as_pandas(rows: list[tuple[int, int | None]], in_order: bool) -> None:
    if in_order:
        rows = sorted(rows, key=lambda r: (r[0], -1 if r[1] is None else r[1]))
    keys = np.array([k for k, _ in rows], dtype=np.int64)
    values = np.array([np.nan if v is None else v for _, v in rows], dtype=np.float64)
    assert _duplicated(keys, values).tolist() == expected(keys, values).tolist()
