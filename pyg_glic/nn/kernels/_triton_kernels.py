r"""Deprecated module, kept for one release: re-exports
:mod:`pyg_glic.nn.attention._triton_kernels` (imports triton)."""
from ..attention._triton_kernels import get_kernels, triton_imported_interpreted  # noqa: F401
