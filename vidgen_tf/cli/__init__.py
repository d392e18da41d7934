"""The `vidgen` command: list, data, train, eval, generate, report, export, quickstart.

One module per subcommand, each importing only what they share from `common` (the
usage error, argument helpers); `main` holds the parser and the dispatch, and hands
itself to the commands that run others (`args.vidgen_main`). The console script is
`vidgen = vidgen_tf.cli:main`; `python -m vidgen_tf.cli` runs the same.
"""

from vidgen_tf.cli.common import EXIT_USAGE, UsageError
from vidgen_tf.cli.main import build_parser, main
from vidgen_tf.cli.train import _compile  # noqa: F401  (tests compile a model as `vidgen train` does)

__all__ = ["EXIT_USAGE", "UsageError", "build_parser", "main"]
