"""The ``irexport`` command line: one module per subcommand, heavy imports only inside ``run``."""
