"""Range checks of the compile options, shared by the command line and the Python API."""
from __future__ import annotations

import math

from .errors import EinhlsError

MAX_CLOCK_MHZ = 1000.0   # above any FPGA fabric clock einhls targets; a typo, not a design
MAX_SEQUENCE_LENGTH = 65536   # far above what any board here buffers; the capacity check says why


def check_options(options, flag=lambda field: field) -> None:
    """Refuse out-of-range options with one line naming the option (``flag`` spells its name).

    ``options``: a CompileOptions, or anything with its fields (the command line's namespace, so
    the check runs before the heavy imports)."""
    def bad(field: str, value, want: str) -> EinhlsError:
        return EinhlsError(f"{flag(field)} {value} is out of range: {want}")

    if not isinstance(options.seed, int) or not 0 <= options.seed < 2 ** 63:
        raise bad("seed", options.seed, "want an integer >= 0")
    if not (math.isfinite(options.max_util) and 0 < options.max_util <= 1):
        raise bad("max_util", options.max_util, "want a fraction of the board, 0 < f <= 1")
    if options.target_ii is not None and (not isinstance(options.target_ii, int) or options.target_ii < 1):
        raise bad("target_ii", options.target_ii, "want a whole number of cycles >= 1")
    target_fps = getattr(options, "target_fps", None)
    if target_fps is not None and not (math.isfinite(target_fps) and target_fps > 0):
        raise bad("target_fps", target_fps, "want frames per second > 0")
    if target_fps is not None and options.target_ii is not None:
        raise EinhlsError(f"{flag('target_ii')} and {flag('target_fps')} both ask for a speed: give one of them")
    if options.clock_mhz is not None and not (math.isfinite(options.clock_mhz)
                                              and 0 < options.clock_mhz <= MAX_CLOCK_MHZ):
        raise bad("clock_mhz", options.clock_mhz, f"want MHz, 0 < f <= {MAX_CLOCK_MHZ:g}")
    length = getattr(options, "sequence_length", None)
    if length is not None and (not isinstance(length, int) or not 1 <= length <= MAX_SEQUENCE_LENGTH):
        raise bad("sequence_length", length, f"want tokens, 1 <= L <= {MAX_SEQUENCE_LENGTH}")
