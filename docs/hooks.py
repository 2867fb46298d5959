"""MkDocs hook: the docstrings' Sphinx cross-reference roles become links.

The docstrings write ``:class:`~lagrax.systems.System``` (the Sphinx role syntax, which
stays readable in the source and in ``help()``); rendered as Markdown that is the text
``:class:`` followed by a code span. This hook turns each such pair into an optional
mkdocs-autorefs reference: a link where the API reference documents the target, plain
code where it does not (no warning). ``~`` shows only the last name, as in Sphinx.
"""

import re

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)</code>")


def _reference(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    title = target.rsplit(".", 1)[-1] if short else target
    return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'


def on_page_content(html, page, config, files):
    return ROLE.sub(_reference, html)
