"""dsntpose: numerical coordinate regression with DSNT (Nibali et al., 2018).

The weight-free operations live in :mod:`dsntpose.ops`; everything else (backbones, heads,
data, evaluation, training, export) builds on them. Heavy modules are imported lazily by the
command-line interface, so ``import dsntpose`` stays cheap.
"""

__version__ = "0.2.0"  # the one place the version is written (pyproject reads it)
