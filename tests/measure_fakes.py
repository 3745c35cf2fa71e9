"""Stand-ins for a builder in tests of the measurement loop (``ProgramMeasurer``), where
what is built does not matter: every candidate "builds" at once, without a file."""

from __future__ import annotations

from collections.abc import Sequence

from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput


class FakeBuilder:
    """Builds nothing: every candidate 'builds'; the measurer batches 2 * n_parallel."""

    timeout = 1.0

    def __init__(self, n_parallel: int = 1) -> None:
        self.n_parallel = n_parallel

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        return [BuildResult("", MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]
