"""vaxqr: signed vaccination credentials (EU DCC, ``HC1:``) in QR codes.

The library is organised in layers; only :mod:`vaxqr.cli` prints, prompts or exits.
"""

__version__ = "0.1.0"
