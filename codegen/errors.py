"""The one error type users see: bad input, unsupported model, impossible design (exit code 2)."""
from __future__ import annotations


class EinhlsError(Exception):
    """A problem with the user's input, reported as one clear line and exit code 2.

    ``node`` names the ONNX node (or IR op) at fault when there is one, so the message always says
    where and why.
    """

    def __init__(self, reason: str, node: str | None = None, op_type: str | None = None) -> None:
        self.reason = reason
        self.node = node
        self.op_type = op_type
        where = ""
        if node is not None:
            where = f"node {node!r}" + (f" ({op_type})" if op_type else "") + ": "
        super().__init__(where + reason)


class CheckFailed(Exception):
    """A verification ran and found a mismatch (exit code 1)."""
