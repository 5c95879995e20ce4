r"""pyg_glic: sparse graph layers for learned image compression and vision GNNs, on PyG."""
__version__ = "0.1.0"

from . import convert, ops, typing  # noqa: E402

__all__ = ["__version__", "convert", "ops", "typing"]
