"""The package's version, in a module of its own so that any module can read it while `dip` loads."""

__version__ = "0.1.0"
