"""The ``topo`` command line (installed as the ``topo_cli`` package).

Each module is one command or command group: it parses options, calls the library,
renders the result and sets the exit code, and nothing else.
"""
