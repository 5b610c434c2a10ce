"""The package version, in one place (read by pyproject and by ``coldb --version``)."""

__version__ = "0.1.0"
