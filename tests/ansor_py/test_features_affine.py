"""Index expressions as affine forms over loop positions (ansor_py.cost_model.affine)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ansor_py.cost_model.affine import IndexAnalyzer, split_flat
from ansor_py.cost_model.loop_summary import SummaryTables, summarise
from ir.expr import BinaryOp, Var, max_expr
from ir.tir import Stmt


@dataclass
class Loop:
    min: int
    extent: int


def analyzer(**extents: int) -> tuple[IndexAnalyzer, dict[str, Var]]:
    """An analyzer under loops named and sized by ``extents`` (outermost first)."""
    index = IndexAnalyzer()
    variables = {}
    for position, (name, extent) in enumerate(extents.items()):
        var = Var(name, "int32")
        variables[name] = var
        index.var_pos[id(var)] = position
        index.loops.append(Loop(0, extent))
    return index, variables


def test_affine_terms_combine_and_cancel() -> None:
    index, v = analyzer(i=4, j=8, k=16)
    terms, const, atoms = index.linear(v["i"] * 32 + v["j"] * 4 - (v["i"] * 32 - 3) + v["k"] * 2 * 3)
    assert terms == {1: 4, 2: 6} and const == 3 and atoms == {}


def test_division_by_a_constant_resolves_when_the_remainder_fits() -> None:
    index, v = analyzer(i0=4, i1=32)
    fused = v["i0"] * 32 + v["i1"]
    assert index.linear(fused // 32) == ({0: 1}, 0, {})
    assert index.linear(fused % 32) == ({1: 1}, 0, {})
    # i1 ranges over 32 values, so (i1 + 5) // 32 is not affine: an atom in [0, 1]
    terms, const, atoms = index.linear((v["i1"] + 5) // 32)
    assert terms == {} and const == 0
    (atom,) = atoms.values()
    assert (atom.coef, atom.lo, atom.hi, atom.positions, atom.root) == (1, 0, 1, (1,), BinaryOp.FLOORDIV)


def test_equal_atoms_cancel_and_scale() -> None:
    index, v = analyzer(f=20, j=3)
    atom = v["f"] // 8  # f in [0, 20): not a multiple of 8, so an atom in [0, 2]
    assert index.linear(atom * 8 + v["j"] - atom * 8) == ({1: 1}, 0, {})
    _, _, atoms = index.linear(atom * 8 + atom * 4)
    (only,) = atoms.values()
    assert (only.coef, only.lo, only.hi) == (12, 0, 2)
    _, _, atoms = index.linear(max_expr(v["f"], v["j"]) * 2)
    (mx,) = atoms.values()
    assert (mx.coef, mx.lo, mx.hi, mx.positions, mx.root) == (2, 0, 19, (0, 1), BinaryOp.MAX)


def test_let_variables_stand_for_their_values() -> None:
    index, v = analyzer(i=4, j=24)
    base = Var("A_base", "int32")
    index.bind_let(base, v["i"] * 24 + 7)
    assert index.linear(base + v["j"]) == ({0: 24, 1: 1}, 7, {})
    assert index.positions(base + 1) == {0}
    assert index.interval(base) == (7, 3 * 24 + 7)


def test_flat_offsets_split_by_strides() -> None:
    index, v = analyzer(i=4, j=24)
    flat = index.linear(v["i"] * 24 + v["j"] + 50)
    rows, cols = split_flat(flat, (24, 1))
    assert rows == ({0: 1}, 2, {}) and cols == ({1: 1}, 2, {})
    # a padded stride (storage_align): the row term still goes to the row dimension
    rows, cols = split_flat(index.linear(v["i"] * 33 + v["j"]), (33, 1))
    assert rows[0] == {0: 1} and cols[0] == {1: 1}


def test_accesses_with_the_wrong_number_of_indices_are_refused() -> None:
    index, v = analyzer(i=4)
    with pytest.raises(ValueError, match="2 indices for buffer 'A' of 3 dimension"):
        index.dims((2, 3, 4), (12, 4, 1), (v["i"], v["i"]), "A")


def test_loop_summary_refuses_an_unknown_statement():
    class Mystery(Stmt):
        pass

    tables = SummaryTables()
    tables.begin_program()
    with pytest.raises(TypeError, match="feature extraction: no rule for statement Mystery"):
        summarise(Mystery(), tables)


def test_interval_of_a_node_without_a_rule_is_unbounded():
    index, v = analyzer(i=4)
    assert index.interval(v["i"] * 2 + 1) == (1, 7)
    assert index.interval((v["i"] < 2).astype("int32")) == (-float("inf"), float("inf"))
