"""The test tree's own rule: pytest imports test modules by basename (rootdir-relative
packages are not used), so two test files with one name break collection of both."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1]
