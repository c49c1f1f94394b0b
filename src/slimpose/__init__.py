"""slimpose: lightweight top-down 2D human pose estimation.

Importing the package is cheap and torch-free; the model, engine and deploy
sub-packages import torch where they need it.
"""

__version__ = "0.1.0"
