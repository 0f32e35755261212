"""``python -m harness``: hand over to the CLI."""
import sys

from harness.cli import main

sys.exit(main())
