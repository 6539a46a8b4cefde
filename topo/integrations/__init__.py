"""topo inside the user's own PyTorch work.

- :mod:`topo.integrations.live`: live models and state dicts as Topologies
  (:func:`from_module`, :func:`from_state_dict`, binary file objects);
- :mod:`topo.integrations.sparsify`: :func:`sparsify`, sparse training in any training
  loop with topo's algorithms;
- :mod:`topo.integrations.monitor`: :class:`TopologyMonitor`, topology metrics while
  training;
- :mod:`topo.integrations.lightning` and :mod:`topo.integrations.hf`: callbacks for
  PyTorch Lightning and Hugging Face ``Trainer`` (optional extras ``lightning`` and
  ``transformers``).

Every module imports torch (and the frameworks) inside its functions, so importing this
package is cheap.
"""

from __future__ import annotations

import importlib

#: public name -> module that defines it (imported on first use)
_LAZY = {
    "from_module": "topo.integrations.live",
    "from_state_dict": "topo.integrations.live",
    "from_file_object": "topo.integrations.live",
    "sparsify": "topo.integrations.sparsify",
    "SparseController": "topo.integrations.sparsify",
    "TopologyMonitor": "topo.integrations.monitor",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
