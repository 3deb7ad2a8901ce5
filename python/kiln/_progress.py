"""Build progress: turns kiln's build phases (parse, optimiser passes, lowering) into `progress(stage, fraction)`
calls, a tqdm bar, or a plain text bar on stderr."""
import sys
import time
from typing import Any, Callable, Optional

ProgressCallback = Callable[[str, float], None]


class _TextBar:
    """A minimal stderr progress bar, used when `progress=True` and tqdm is not installed."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def __call__(self, stage: str, fraction: float) -> None:
        width = 30
        filled = int(round(width * fraction))
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\rkiln build [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% "
                          f"{stage:<40.40} {elapsed:6.1f}s")
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()


class _TqdmAdapter:
    """Drives a tqdm-like bar (anything with `total`, `n`, `update()`, `set_description()`) on a 0..100 scale."""

    def __init__(self, bar: Any, owned: bool):
        self.bar = bar
        self.owned = owned
        if getattr(bar, "total", None) in (None, 0):
            bar.total = 100

    def __call__(self, stage: str, fraction: float) -> None:
        target = fraction * self.bar.total
        if hasattr(self.bar, "set_description"):
            self.bar.set_description(stage)
        self.bar.update(max(0.0, target - self.bar.n))
        if fraction >= 1.0 and self.owned:
            self.bar.close()


def make_reporter(progress: Any) -> Optional[ProgressCallback]:
    """None/False: no progress. True: a tqdm bar when tqdm is installed, else a text bar on stderr.
    A tqdm instance: driven on a 0..100 scale. A callable: called as progress(stage, fraction)."""
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _TextBar()
        return _TqdmAdapter(tqdm(total=100, unit="%", desc="kiln build",
                                 bar_format="{desc:<28.28} {bar} {percentage:3.0f}% {elapsed}"), owned=True)
    if hasattr(progress, "update") and hasattr(progress, "n"):
        return _TqdmAdapter(progress, owned=False)
    if callable(progress):
        return progress
    raise TypeError(f"progress must be None, a bool, a tqdm bar or a callable(stage, fraction), got {progress!r}")


class BuildProgress:
    """Monotonic fractions for the build phases: parse 0-25%, optimiser passes 25-90%, lowering 90-100%."""

    def __init__(self, reporter: Optional[ProgressCallback]):
        self.reporter = reporter
        self.fraction = 0.0
        self.passes = 0

    def report(self, stage: str, fraction: float) -> None:
        self.fraction = max(self.fraction, min(1.0, fraction))
        if self.reporter is not None:
            self.reporter(stage, self.fraction)

    def on_pass(self, message: str) -> None:
        """Called for each optimiser pass message ("pass NAME: a -> b nodes")."""
        self.passes += 1
        name = message.split(":", 1)[0][len("pass "):]
        self.report(f"optimize: {name}", 0.25 + 0.65 * (1.0 - 0.8 ** self.passes))
