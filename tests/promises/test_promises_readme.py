"""The promises (docs/promises.md, linked from the README): every numbered promise names the
tests that check it, and every test it names exists (so a promise cannot lose its test unnoticed)."""

import re
from tests.helpers import ROOT

PROMISES = ROOT / "docs" / "promises.md"


def _promises() -> list[str]:
    assert PROMISES.is_file(), "docs/promises.md is missing"
    return re.split(r"^\d+\. ", PROMISES.read_text(), flags=re.M)[1:]


def _test_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    return names


def test_the_readme_links_the_promises():
    assert "(docs/promises.md)" in (ROOT / "README.md").read_text()


def test_every_promise_names_existing_tests():
    promises = _promises()
    assert len(promises) >= 10
    known = _test_names()
    for promise in promises:
        head = promise.split("\n")[0]
        tests = re.findall(r"`(test_\w+)`", promise.split("Tests:")[-1]) if "Tests:" in promise else []
        assert tests, f"promise without tests: {head}"
        missing = [t for t in tests if t not in known]
        assert not missing, f"promise {head!r} names tests that do not exist: {missing}"
