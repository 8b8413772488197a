"""One fixed reduction tree, whoever runs it: results do not depend on completion order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, TypeVar

from ..exceptions import ParameterError

__all__ = ["tree_fold"]

T = TypeVar("T")


def tree_fold(items: Iterable[T], combine: Callable[[T, T], T]) -> T:
    """Fold ``items`` (in index order) with ``combine(left, right)`` along a tree fixed by
    the item index alone (a binary counter: equal-sized partial results merge as soon as
    both exist, the rest fold right to left), holding O(log n) partial results.
    ``combine`` may be ``operator.add`` or a Dask task on two futures: the same bits.

    Examples
    --------
    >>> tree_fold(["a", "b", "c", "d", "e"], lambda x, y: f"({x}{y})")
    '(((ab)(cd))e)'
    """
    stack: list[tuple[int, T]] = []
    for x in items:
        size, node = 1, x
        while stack and stack[-1][0] == size:
            size, node = 2 * size, combine(stack.pop()[1], node)
        stack.append((size, node))
    if not stack:
        raise ParameterError("nothing to reduce")
    total = stack.pop()[1]
    while stack:
        total = combine(stack.pop()[1], total)
    return total
