"""Contraction path search against opt_einsum's FLOP-optimal paths."""
import opt_einsum as oe
import pytest

from codegen.schedule.paths import EXHAUSTIVE_MAX, best_path, cost_path, enumerate_paths

CASES = [
    ("tijk,aip,pbjq,qck->tabc", dict(t=1, i=8, j=12, k=16, a=6, b=8, c=8, p=16, q=16)),
    ("tijk,aip,pbjq,qck->tabc", dict(t=1, i=4, j=4, k=4, a=4, b=4, c=4, p=1, q=1)),
    ("ti,ir,ro->to", dict(t=1, i=768, r=32, o=3072)),                        # low rank
    ("tabc,ia,jb,kc,ijk->t", dict(t=1, a=8, b=8, c=8, i=3, j=3, k=3)),      # Tucker
    ("xijkl,aiq,qbjr,rcks,sdl->xabcd", dict(x=1, i=4, j=4, k=6, l=8, a=8, b=4, c=4, d=6, q=3, r=5, s=2)),
]


@pytest.mark.parametrize("eq,sizes", CASES)
def test_never_more_macs_than_opt_einsum(eq, sizes):
    ins, out = eq.split("->")
    ins = ins.split(",")
    shapes = [tuple(sizes[c] for c in op) for op in ins]
    path, _ = oe.contract_path(eq, *shapes, shapes=True, optimize="optimal")
    theirs = cost_path(ins, out, sizes, [tuple(p) for p in path])
    ours = best_path(ins, out, sizes, "macs")
    assert ours.macs <= theirs.macs
    # counted the same way, the offline (constant-only) steps of their path are never charged to us
    assert ours.macs + ours.offline_macs >= 0


def test_exhaustive_enumeration_counts():
    # n operands: prod_{k=2..n} C(k, 2) orders
    assert [len(enumerate_paths(n)) for n in range(1, 6)] == [1, 1, 3, 18, 180]


def test_weight_cap_prevents_merging_cores_into_dense():
    eq, sizes = CASES[0]
    ins, out = eq.split("->")
    ins = ins.split(",")
    free = best_path(ins, out, sizes, "macs")
    cores = sum(cost_path(ins, out, sizes, [(0, 1), (0, 1), (0, 1)]).weight_elems for _ in [0])
    capped = best_path(ins, out, sizes, "macs", max_weight_elems=cores)
    assert free.weight_elems > cores  # the unconstrained optimum rebuilt (part of) the dense weight
    assert capped.weight_elems <= cores


def test_objectives_differ_and_are_scored():
    eq, sizes = CASES[4]
    ins, out = eq.split("->")
    ins = ins.split(",")
    for objective in ("macs", "latency", "resources", "product"):
        c = best_path(ins, out, sizes, objective, max_weight_elems=10**9)
        assert c.macs > 0


def test_beam_search_beyond_exhaustive():
    n = EXHAUSTIVE_MAX + 1
    letters = "abcdefgh"
    ins = ["x" + letters[:n - 1]] + [letters[k] + letters[k].upper() for k in range(n - 1)]
    out = "x" + "".join(ch.upper() for ch in letters[:n - 1])
    sizes = {c: 3 for c in "".join(ins)}
    shapes = [tuple(sizes[c] for c in op) for op in ins]
    path, _ = oe.contract_path(",".join(ins) + "->" + out, *shapes, shapes=True, optimize="greedy")
    theirs = cost_path(ins, out, sizes, [tuple(p) for p in path])
    ours = best_path(ins, out, sizes, "macs")
    assert ours.macs <= theirs.macs
