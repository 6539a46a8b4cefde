"""Griffe extension for the API pages: Sphinx roles in docstrings shown as code.

topo's docstrings name other objects the Sphinx way (``:class:`Topology```,
``:func:`topo.load```); MkDocs renders Markdown, where those would show their role
prefix. This shows them as inline code, the object's name alone.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const|term|ref):`~?([^`]+)`")


class SphinxRolesAsCode(griffe.Extension):
    """Rewrite ``:role:`target``` as ```target``` in every docstring."""

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(lambda m: f"`{m.group(1)}`", obj.docstring.value)
