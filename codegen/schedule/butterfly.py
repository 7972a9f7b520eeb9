"""The butterfly unit's memory layout, cycle schedule and cost (docs/hardware.md, "Butterfly unit").

P butterfly units (P a power of two, 1 <= P <= n/2) each take one pair per cycle: a stage of
NT = stacks * n elements takes CT = NT / (2P) cycles.  Cycle c of a stage with stride st = 2^a
gives unit u the pair q = c * P + u (q = stack * n/2 + local pair, as in the IR).

Banked memory, 2P banks, the skewed (XOR) mapping of element e = stack * n + local:

    bank(e)    = (local mod P)  +  P * parity(local >> p)          p = log2 P
    address(e) = stack * n/(2P) + (local >> (p + 1))

In every cycle the 2P elements of the P pairs lie in 2P different banks, at every stride:
the elements of a cycle differ exactly in the bits {0..p-1, a} (a >= p) or {0..p} (a < p), and
bank() maps both sets one to one (its low p bits are the element's, its top bit the parity of the
others).  Consecutive words of 2P elements (what the input loader writes and the output drain
reads) are conflict free too.  :func:`count_conflicts` counts, and tests/test_butterfly.py shows it
is zero for every n, P and stage, while the naive ``e mod 2P`` conflicts at some stride.

Positions: in a cycle, "logical" position v in [0, 2P) lives in physical bank v XOR (parity << p)
at address A0 (v < P) or A1 (v >= P), where A0, A1 are the addresses of unit 0's two elements and
parity = parity(e0(unit 0) >> p).  Unit u reads positions (u, u + P) when a >= p, and
(ins0(u, a), ins0(u, a) + 2^a) when a < p (ins0 inserts a zero bit at position a).  The Verilog
(rtl_kernels/einhls_butterfly.v) and the HLS C++ (hls_kernels/einhls_butterfly.h) implement these
formulas; the Python here is what the tests check them against.

Stage overlap: stage s + 1 starts right after stage s unless it would read an element before the
write of stage s landed; ``stage_gaps`` computes the idle cycles needed from the unit's write
latency (RTL_READ_AFTER_WRITE) and the stride pattern (in cycle order most reads of stage s + 1
trail the writes of stage s by far more than the pipeline depth, so gaps appear only when a
stage takes few cycles: CT < 16 for the standard strides).

Frames in flight: with short stages the gaps would dominate, so the unit keeps up to 8 frames
(contexts) in flight, each running a whole stage at a time and waiting its gap while another
runs.  ``simulate_issue`` is a cycle-exact model of that issue logic; ``timing`` picks the fewest
contexts within 2% of the best throughput and gives the cycles per frame the scheduler uses and
RTL simulation measures (tests/test_butterfly_rtl.py, bench/results/butterfly.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.butterfly import Butterfly, pair_elements

#: A read issued at cycle t' sees the write of a pair issued at cycle t when t' - t >= this
#: (rtl_kernels/einhls_butterfly.v: memory read, operands, products, sums, requant product,
#: rounding, write registers, then the memory write).
RTL_READ_AFTER_WRITE = 8
#: Cycles from the issue of a pair to its result in the memory, for latency estimates.
PIPELINE_DEPTH = RTL_READ_AFTER_WRITE


def log2i(value: int) -> int:
    return int(value).bit_length() - 1


def parity(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64).copy()
    out = np.zeros_like(v)
    while np.any(v):
        out ^= v & 1
        v >>= 1
    return out


def bank_of(e: np.ndarray, n: int, units: int) -> np.ndarray:
    """Physical bank of element(s) e (skewed mapping, see module docstring)."""
    p = log2i(units)
    local = np.asarray(e, dtype=np.int64) % n
    return (local & (units - 1)) | (parity(local >> p) << p)


def address_of(e: np.ndarray, n: int, units: int) -> np.ndarray:
    p = log2i(units)
    e = np.asarray(e, dtype=np.int64)
    return (e // n) * (n >> (p + 1)) + ((e % n) >> (p + 1))


def naive_bank_of(e: np.ndarray, n: int, units: int) -> np.ndarray:
    """The unskewed mapping e mod 2P, for comparison: it conflicts at stride >= P."""
    return np.asarray(e, dtype=np.int64) % (2 * units)


def cycle_elements(total: int, units: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(e0, e1) [CT, P]: the pair elements unit u handles in cycle c of a stage."""
    e0, e1 = pair_elements(total, stride)
    return e0.reshape(-1, units), e1.reshape(-1, units)


def count_conflicts(n: int, stacks: int, units: int, stride: int, bank=bank_of) -> int:
    """Cycles of one stage in which two of the 2P accessed elements share a bank."""
    e0, e1 = cycle_elements(n * stacks, units, stride)
    banks = np.concatenate([bank(e0, n, units), bank(e1, n, units)], axis=1)
    return int(sum(len(set(row)) != len(row) for row in banks.tolist()))


def word_conflicts(n: int, stacks: int, units: int, bank=bank_of) -> int:
    """Words of 2P consecutive elements (loader / drain) whose elements share a bank."""
    e = np.arange(n * stacks).reshape(-1, 2 * units)
    banks = bank(e, n, units)
    return int(sum(len(set(row)) != len(row) for row in banks.tolist()))


def layout_is_bijective(n: int, stacks: int, units: int) -> bool:
    """Every element has its own (bank, address) and addresses stay below NT / (2P)."""
    e = np.arange(n * stacks)
    b, a = bank_of(e, n, units), address_of(e, n, units)
    depth = n * stacks // (2 * units)
    return bool(a.max() < depth and len(set(zip(b.tolist(), a.tolist()))) == e.size)


def stage_cycle_of(total: int, units: int, stride: int) -> np.ndarray:
    """[NT]: the cycle (within its stage) in which each element is read and written."""
    e0, e1 = pair_elements(total, stride)
    cycle = np.empty(total, dtype=np.int64)
    q = np.arange(total // 2)
    cycle[e0] = q // units
    cycle[e1] = q // units
    return cycle


def stage_gaps(n: int, stacks: int, strides, units: int,
               read_after_write: int = RTL_READ_AFTER_WRITE) -> list[int]:
    """Idle cycles after each stage (the last entry, after the last stage, is 0).

    Stage s + 1's cycle r(e) reads what stage s wrote in cycle w(e); with stage s + 1 starting
    CT + g cycles after stage s, every element needs CT + g + r(e) - w(e) >= read_after_write.
    """
    total = n * stacks
    ct = total // (2 * units)
    gaps = []
    for s in range(len(strides) - 1):
        lag = int(np.max(stage_cycle_of(total, units, strides[s])
                         - stage_cycle_of(total, units, strides[s + 1])))
        gaps.append(max(0, lag + read_after_write - ct))
    return gaps + [0]


def unit_options(op: Butterfly) -> list[int]:
    """Numbers of butterfly units worth building: the powers of two 1 .. n/2."""
    return [1 << k for k in range(log2i(op.n))]


# --- cycles and resources -------------------------------------------------------------------

#: Frames that may be in the units at the same time (one context each); IN and OUT hold twice as
#: many.  Contexts take turns stage by stage, so one frame's stage hides another's gap.
CONTEXT_CHOICES = (1, 2, 4, 8)


def simulate_issue(ct: int, gaps, frames: int, contexts: int = 1) -> list[int]:
    """Cycle of each frame's last issue, inputs always loaded and outputs always drained.

    A cycle-exact model of the issue logic of rtl_kernels/einhls_butterfly.v: a context that is
    started (one cycle) issues its stages; after stage s it waits gaps[s] cycles; when no stage is
    running the older ready context starts one (the other when the older waits); a started stage
    runs its CT cycles without interruption.
    """
    stages = len(gaps)
    busy, st, idle = [False] * contexts, [0] * contexts, [0] * contexts
    running, cur, cyc, nxt, old = False, 0, 0, 0, 0
    started, done, t = 0, [], 0
    while len(done) < frames:
        ready = [busy[x] and idle[x] == 0 for x in range(contexts)]
        issuing = cur if running else next((x for x in [(old + i) % contexts for i in range(contexts)]
                                            if ready[x]), None)
        start = started < frames and not busy[nxt]
        new_idle = list(idle)
        for x in range(contexts):
            if idle[x]:
                new_idle[x] = idle[x] - 1
        if issuing is not None:
            if cyc == ct - 1:
                running, cyc = False, 0
                if st[issuing] == stages - 1:
                    busy[issuing], st[issuing] = False, 0
                    done.append(t)
                    old = (old + 1) % contexts
                else:
                    new_idle[issuing] = gaps[st[issuing]]
                    st[issuing] += 1
            else:
                running, cur, cyc = True, issuing, cyc + 1
        idle = new_idle
        if start:
            busy[nxt], st[nxt], idle[nxt] = True, 0, 0
            nxt = (nxt + 1) % contexts
            started += 1
        t += 1
    return done


@dataclass(frozen=True)
class ButterflyTiming:
    units: int
    contexts: int           # frames in the units at once
    stage_cycles: int       # CT = NT / (2P)
    gaps: tuple[int, ...]   # idle cycles a frame needs after each stage
    compute: int            # steady-state cycles per frame
    single: int             # cycles of one frame alone (first to last issue, plus 1)
    roofline: int           # L * NT / (2P): 4 P multipliers busy every cycle

    @property
    def efficiency(self) -> float:
        return self.roofline / self.compute


def steady_cycles(ct: int, gaps, contexts: int) -> int:
    """Cycles per frame once the issue logic repeats (it does every ``contexts`` frames)."""
    warm, span = 2 * contexts + 2, 4 * contexts
    done = simulate_issue(ct, gaps, warm + span + contexts + 1, contexts)
    return math.ceil((done[warm + span] - done[warm]) / span)


def timing(op: Butterfly, units: int) -> ButterflyTiming:
    """Cycles at P = ``units``, with the fewest contexts within 2% of the best throughput."""
    ct = op.total // (2 * units)
    gaps = tuple(stage_gaps(op.n, op.stacks, op.strides, units))
    roofline = op.stages * ct
    if not any(gaps):      # one frame at a time loses only the cycle that starts the next frame
        return ButterflyTiming(units, 1, ct, gaps, roofline + 1, roofline + 1, roofline)
    cycles = {ctx: steady_cycles(ct, gaps, ctx) for ctx in CONTEXT_CHOICES}
    best = min(cycles.values())
    contexts = next(ctx for ctx in CONTEXT_CHOICES if cycles[ctx] <= best * 1.02)
    single = simulate_issue(ct, gaps, 1)[0] + 1
    return ButterflyTiming(units, contexts, ct, gaps, cycles[contexts], single, roofline)


def storage_bits(op: Butterfly) -> int:
    """Signed width that holds the input codes and every stage's output codes."""
    types = [op.in_type, *op.stage_types]
    return max(t.bits + (0 if t.signed else 1) for t in types)


def needs_requant_multiplier(op: Butterfly) -> bool:
    return any(r.multiplier[0] != 1 or r.per_channel for r in op.requants)


def has_bias(op: Butterfly) -> bool:
    return bool(np.any(op.bias))


def butterfly_options(op: Butterfly) -> list[tuple[int, int, int]]:
    """(cycles, simd, pe) for the folding search, cheapest first: pe = P units, simd = 2 (a pair)."""
    return [(timing(op, units).compute, 2, units) for units in unit_options(op)]


def butterfly_terms(op: Butterfly, s, dsp_kind: str) -> dict[str, dict[str, float]]:
    """The first-order LUT and FF counts of einhls_butterfly with P = s.pe units, term by term (their
    sums are butterfly_cost's; codegen/schedule/calibration.py fits a weight per term).  The
    memories are kept apart from the logic because Yosys places them by size: the twiddle ROM
    leaves block RAM for LUTs where it is at most 64 words deep (P >= 4 at n = 64), the banks are
    distributed RAM at every P of the sweep."""
    from .cost import LUT_MULT_MAX_BITS, bram36_for, lut_multiplier, multiplier_dsps

    units = s.pe
    banks = 2 * units
    w_bits, t_bits = storage_bits(op), op.twiddle_type.bits
    acc_bits = max(t.bits for t in op.acc_types)
    mul_rq = needs_requant_multiplier(op)
    m_bits = max(r.multiplier_bits for r in op.requants) if mul_rq else 1
    rq_bits = max(acc_bits, max(r.shift for r in op.requants) - m_bits + 1) + m_bits + 1
    per_mult = multiplier_dsps(w_bits, t_bits, dsp_kind)
    multipliers = 4 * units
    lut = {"control": 200 + 16 * op.stages, "ram_lut": 0, "rom_lut": 0, "datapath": 0}
    for width, depth in bank_memories(op, units):
        if bram36_for(width, depth) == 0:
            lut["ram_lut"] += banks * width * math.ceil(depth / 64)         # distributed RAM
    for width, depth in rom_shapes(op, units):
        if bram36_for(width, depth) == 0:
            lut["rom_lut"] += width * math.ceil(depth / 64)
    select = max(1, math.ceil((math.log2(units) + 1) / 4)) if units > 1 else 1
    datapath = banks * w_bits * (2 + 2 * select)                     # bank swap and operand select, read and write
    if min(w_bits, t_bits) <= LUT_MULT_MAX_BITS or per_mult == 0:
        datapath += multipliers * lut_multiplier(w_bits, t_bits)
    datapath += banks * (2 * acc_bits)                                # the two adders of each output
    shifter = 1 if len({r.shift for r in op.requants}) == 1 else max(1, math.ceil(math.log2(rq_bits))) // 2
    datapath += banks * (rq_bits * shifter + 3 * w_bits)              # rounding (a barrel shift if shifts differ), clamp
    lut["datapath"] = datapath
    ff = {"registers": banks * (3 * w_bits + 2 * acc_bits + rq_bits) + 2 * 4 * units * t_bits + 64 * 7}
    return {"lut": lut, "ff": ff}


def bank_memories(op: Butterfly, units: int) -> list[tuple[int, int]]:
    """(width, depth) of each bank's memories: IN and OUT (2 * contexts frames), WK (2 halves per
    context)."""
    tm = timing(op, units)
    banks = 2 * units
    slots = 2 * tm.contexts
    memories = [(op.in_type.bits, slots * (op.n // banks)), (op.out_type.bits, slots * math.ceil(op.out_size / banks))]
    if op.stages > 1:
        memories.append((storage_bits(op), 2 * tm.contexts * tm.stage_cycles))
    return memories


def rom_shapes(op: Butterfly, units: int) -> list[tuple[int, int]]:
    """(width, depth) of the twiddle ROM and the bias ROM."""
    tm = timing(op, units)
    roms = [(4 * units * op.twiddle_type.bits, op.stages * tm.stage_cycles)]
    if has_bias(op):
        roms.append((2 * units * max(t.bits for t in op.acc_types), op.stages * tm.stage_cycles))
    return roms


def butterfly_cost(op: Butterfly, s, dsp_kind: str):
    """Cycles and resources of einhls_butterfly with P = s.pe units (see the module docstring)."""
    from .cost import OpCost, bram36_for, multiplier_dsps

    units = s.pe
    tm = timing(op, units)
    banks = 2 * units
    w_bits, t_bits = storage_bits(op), op.twiddle_type.bits
    acc_bits = max(t.bits for t in op.acc_types)
    mul_rq = needs_requant_multiplier(op)
    m_bits = max(r.multiplier_bits for r in op.requants) if mul_rq else 1
    in_beats = math.ceil(op.in_size / s.in_lanes)
    out_beats = math.ceil(op.out_size / s.out_lanes)
    out_words = math.ceil(op.out_size / banks)

    multipliers = 4 * units
    per_mult = multiplier_dsps(w_bits, t_bits, dsp_kind)
    dsp = multipliers * per_mult + (2 * units * multiplier_dsps(acc_bits, m_bits, dsp_kind) if mul_rq else 0)
    bram = 0.0
    buffer_bits = 0
    for width, depth in bank_memories(op, units):
        bram += banks * bram36_for(width, depth)
        buffer_bits += banks * width * depth
    weight_bits = 0
    for width, depth in rom_shapes(op, units):
        bram += bram36_for(width, depth)
        weight_bits += width * depth
    terms = butterfly_terms(op, s, dsp_kind)
    return OpCost(cycles=tm.compute, ii=max(tm.compute, in_beats, out_beats),
                  latency=in_beats + tm.single + PIPELINE_DEPTH + out_words + out_beats,
                  multipliers=multipliers, dense_multipliers=multipliers, dsp=dsp, bram36=bram,
                  lut=int(sum(terms["lut"].values())), ff=int(sum(terms["ff"].values())), macs=op.macs,
                  effective_macs=multipliers * op.stages * tm.stage_cycles,
                  weight_bits=weight_bits, buffer_bits=buffer_bits)


def report_fields(op, s) -> dict:
    """report.json fields of a Butterfly op at its schedule (empty for other ops)."""
    if not isinstance(op, Butterfly):
        return {}
    tm = timing(op, s.pe)
    return {"units": s.pe, "contexts": tm.contexts, "stacks": op.stacks, "butterfly_n": op.n,
            "strides": list(op.strides), "stage_cycles": tm.stage_cycles, "stage_gaps": list(tm.gaps),
            "roofline_cycles": tm.roofline}
