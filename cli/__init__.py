"""The ``topo`` command line (installed as the ``topo_cli`` package).

Each module is one command or command group: it parses options, calls the library,
renders the result and sets the exit code, and nothing else. What every command shares
is declared once beside them: ``command`` (option sections in ``--help``, ``--quiet`` and
``--verbose``, one-line usage errors), ``messages`` (what goes to stderr at each level),
``options`` (shared options), ``render`` (tables, JSON, CSV), ``progress`` (progress bars)
and ``errors`` (library errors as one line).
"""
