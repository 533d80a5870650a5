"""``python -m proxcompress`` runs the command line."""

import sys

from proxcompress.cli import main

sys.exit(main())
