"""A module that takes a second to import: ``LocalExecutor.warm`` tests keep their workers
starting that long (tests/test_workers.py)."""

import time

time.sleep(1.0)
