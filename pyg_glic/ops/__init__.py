r"""Low-level operations with a compiled and a pure-torch backend each."""
from .knn import knn
from .scatter import scatter

__all__ = ["knn", "scatter"]
