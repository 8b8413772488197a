"""One fixed reduction tree, whoever runs it: results do not depend on completion order.

:func:`tree_fold` combines items pairwise in a binary tree fixed by the item index
alone (a binary counter: equal-sized partial results merge as soon as both exist,
the rest fold right to left at the end), holding O(log n) partial results. The
caller passes the combine step: ``operator.add`` on values in this process, or a
function that submits the addition as a Dask task on futures (the same tree, run on
the workers). Floating-point addition is deterministic for given operands, so both
give the same bits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, TypeVar

from ..exceptions import ParameterError

__all__ = ["tree_fold"]

T = TypeVar("T")


def tree_fold(items: Iterable[T], combine: Callable[[T, T], T]) -> T:
    """Fold ``items`` (in index order) with ``combine(left, right)`` along the fixed tree.

    Examples
    --------
    >>> tree_fold(["a", "b", "c", "d", "e"], lambda x, y: f"({x}{y})")
    '(((ab)(cd))e)'
    """
    stack: list[tuple[int, T]] = []
    for x in items:
        size, node = 1, x
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            size, node = 2 * size, combine(left, node)
        stack.append((size, node))
    if not stack:
        raise ParameterError("nothing to reduce")
    total = stack.pop()[1]
    while stack:
        total = combine(stack.pop()[1], total)
    return total
