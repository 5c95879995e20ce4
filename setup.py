import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(r'^__version__ = "([^"]+)"', (here / "pyg_glic" / "__init__.py").read_text(),
                    re.M).group(1)

setup(
    name="pyg_glic",
    version=version,
    description="Sparse graph layers for learned image compression (GLIC) and vision GNNs, "
                "on PyTorch Geometric",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["pyg_glic", "pyg_glic.*"]),
    package_data={"pyg_glic": ["assets/*.png", "zoo/weights/*.pt"]},
    python_requires=">=3.10",
    # Exact pins live in constraints.txt (scripts/bootstrap.sh installs with it).
    install_requires=[
        "torch>=2.4",
        "torchvision",
        "torch-geometric>=2.6",
        "compressai>=1.2.8",
        "numpy<2",
        "pillow",
        "tqdm",
        "matplotlib",
        "pytorch-msssim",
        "bjontegaard",
    ],
    # Optional compiled backends (k-NN, scatter); every operation also has a pure-torch
    # path (pyg_glic.typing). scripts/bootstrap.sh builds and installs them.
    extras_require={"test": ["pytest"], "ext": ["torch-cluster", "torch-scatter"]},
    entry_points={"console_scripts": ["pyg-glic=pyg_glic.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Image Processing",
    ],
)
