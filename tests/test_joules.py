"""A window's energy, the accelerator's and the host's, divided and subtracted together."""

from __future__ import annotations

import dataclasses

import pytest

from llmenergy import joules
from llmenergy.joules import Joules


def test_division_is_per_pass_for_both_figures():
    # 12 prefill passes in one window of 600 J on the GPU and 48 J on the host.
    assert Joules(600.0, 48.0) / 12 == Joules(50.0, 4.0)


def test_subtraction_takes_each_figure_from_its_own():
    # A task's 3 passes drew 900 J and 90 J; prefill's one pass 100 J and 10 J.
    assert Joules(900.0, 90.0) / 3 - Joules(100.0, 10.0) == Joules(200.0, 20.0)


def test_a_figure_not_read_stays_not_read():
    assert Joules(600.0) / 4 == Joules(150.0, None)
    assert Joules(600.0, None) - Joules(100.0, 10.0) == Joules(500.0, None)
    assert Joules(600.0, 30.0) - Joules(100.0, None) == Joules(500.0, None)
    assert Joules(None, 30.0) - Joules(100.0, 10.0) == Joules(None, 20.0)
    assert joules.NONE / 7 == joules.NONE
    assert Joules(5.0, 1.0) - joules.NONE == joules.NONE


def test_the_same_arithmetic_as_the_floats_it_replaces():
    """Nothing is rounded or reordered: the figures are bit for bit those of the arithmetic
    written out on each float, whole / passes - part."""
    whole, passes, part = 1234.5678, 7, 98.7654321
    got = Joules(whole, whole / 3) / passes - Joules(part, part / 5)
    assert got.accelerator == whole / passes - part
    assert got.host == (whole / 3) / passes - part / 5


def test_none_is_neither_figure_and_the_value_is_frozen():
    assert Joules(None, None) == joules.NONE
    with pytest.raises(dataclasses.FrozenInstanceError):
        Joules(1.0).accelerator = 2.0  # type: ignore[misc]
