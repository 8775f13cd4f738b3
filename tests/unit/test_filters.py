"""Filter names compared as people write them (obsy.filters): what the scheduler and the web's counts share."""

from __future__ import annotations

import pytest

from obsy.filters import filter_key, same_filter


@pytest.mark.parametrize(
    ("a", "b"),
    [("L", "Luminance"), ("lum", "LUMINANCE"), ("R", "Red"), ("Ha", "H_Alpha"), ("H-Alpha", "halpha"), ("S2", "SII"),
     ("O III", "OIII"), ("LPR", "lpr"), (None, ""), (None, None)],
)  # fmt: skip
def test_names_of_one_filter_are_the_same(a, b):
    assert same_filter(a, b) and same_filter(b, a)


@pytest.mark.parametrize(("a", "b"), [("L", "Red"), ("R", "Green"), ("Ha", "Hb"), ("LPR", "Luminance"), (None, "L")])
def test_names_of_other_filters_are_not(a, b):
    assert not same_filter(a, b) and not same_filter(b, a)


def test_keys_drop_case_blanks_and_punctuation():
    assert filter_key("H-Alpha") == filter_key(" h_alpha ") == "halpha"
    assert filter_key(None) == ""
