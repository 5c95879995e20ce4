r"""Small helpers shared by the command line, examples and benchmarks."""
