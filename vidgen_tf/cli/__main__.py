"""`python -m vidgen_tf.cli`: the `vidgen` command."""

import sys

from vidgen_tf.cli import main

sys.exit(main())
