"""One timeout for every wait in the suite; scale it on slow machines."""

import os

TIMEOUT: float = 10.0 * float(os.environ.get("OPTISYNC_TIMEOUT_FACTOR", "1"))
"""Seconds to wait for a condition before the test fails."""

TIMEOUT_MS: int = int(TIMEOUT * 1000)
