"""The `vidgen` command: list, data, train, eval, generate, report, export, quickstart.

One module per subcommand; `common` holds what they share (the usage error,
argument helpers, the parser and `main`). The console script is
`vidgen = vidgen_tf.cli:main`; `python -m vidgen_tf.cli` runs the same.
"""

from vidgen_tf.cli.common import EXIT_USAGE, UsageError, build_parser, main
from vidgen_tf.cli.train import _compile  # noqa: F401  (tests compile a model as `vidgen train` does)

__all__ = ["EXIT_USAGE", "UsageError", "build_parser", "main"]
