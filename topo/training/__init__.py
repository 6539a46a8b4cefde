"""Training sparse networks: see the modules of this package."""
