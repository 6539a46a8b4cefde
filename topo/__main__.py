"""``python -m topo``: the ``topo`` command line.

The command line (click and the command modules) is imported here, when run as a
program, never by ``import topo``.
"""

if __name__ == "__main__":
    from topo_cli.main import main

    main(prog_name="topo")
