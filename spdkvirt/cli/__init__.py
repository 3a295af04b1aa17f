"""The ``spdkvirt`` command line: one module per command group, wired together in :mod:`.main`."""
