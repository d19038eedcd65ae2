"""Pure plotting functions: each takes arrays and returns a matplotlib Figure (Agg backend)."""

import matplotlib

matplotlib.use("Agg")
