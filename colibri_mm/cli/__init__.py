"""The ``coldb`` command-line tool."""
