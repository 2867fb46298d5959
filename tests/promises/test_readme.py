"""The Python examples of the README and of the documentation pages (docs/) run and their
assertions hold (documentation that cannot rot)."""

import re

import pytest
from tests.helpers import ROOT

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = [
    (page.relative_to(ROOT).as_posix(), index, code)
    for page in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
]


def test_readme_and_docs_have_examples():
    readme = [e for e in EXAMPLES if e[0] == "README.md"]
    assert len(readme) >= 1 and len(EXAMPLES) >= 5


@pytest.mark.parametrize("page, index, code", EXAMPLES, ids=[f"{p}:{i}" for p, i, _ in EXAMPLES])
def test_readme_example_runs(page, index, code, capsys):
    exec(compile(code, f"{page} python block {index}", "exec"), {})
