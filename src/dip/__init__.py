"""dip: restore images with the Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, 2018)."""
from .errors import DipError
from .tasks import Restoration, deblock, denoise, restore

__all__ = ["DipError", "Restoration", "deblock", "denoise", "restore"]
__version__ = "0.1.0"
