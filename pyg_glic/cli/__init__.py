r"""The ``pyg-glic`` command line (also ``python -m pyg_glic``)."""
