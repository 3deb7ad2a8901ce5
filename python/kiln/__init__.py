"""kiln: a deep-learning inference optimizer and runtime.

High-level API::

    import kiln
    engine = kiln.build("model.onnx")            # parse, optimise, lower -> Engine (CPU)
    engine.save("model.plan")
    engine = kiln.load("model.plan")
    print(engine.inputs, engine.outputs)         # names, shapes (symbolic dims as str), dtypes
    ctx = engine.create_context(threads=4)
    outputs = ctx.run({"input": x})              # {name: numpy.ndarray}; x: numpy array or DLPack tensor
    y = engine(x)                                # single-input models

TensorRT-style low-level API (for people migrating): ``Logger``, ``Builder``, ``BuilderConfig``, ``BuilderFlag``,
``NetworkDefinition``, ``OnnxParser``, ``Runtime``, ``ExecutionContext``, all from the C++ API one to one.

Errors are ``KilnError`` subclasses carrying the C++ message and ``.code`` (e.g. ``"kUnsupported"``).
"""
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np

# oneDNN's OpenMP threads spin-wait by default, which stalls badly when other work shares the cores; like the CLI,
# default to passive waiting unless the user chose a policy. Must be set before the extension loads OpenMP.
# A short spin before sleeping (about 10 us) saves a futex wake-up per convolution, as in the CLI.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from . import _kiln  # noqa: E402  (after the OpenMP environment above)
from ._errors import (FileError, InternalError, InvalidArgumentError, InvalidModelError, InvalidPlanError, KilnError,
                      OutOfMemoryError, UnsupportedError, VersionMismatchError)
from ._kiln import (BuilderConfig, BuilderFlag, BuildReport, DataType, Logger, NetworkDefinition, NullLogger,
                    OnnxParser, PassStat, Runtime, Severity, StderrLogger, TensorDesc, build_info, parse_dtype)
from ._kiln import Builder as Builder
from ._kiln import Engine as CppEngine
from ._kiln import ExecutionContext as ExecutionContext
from ._progress import BuildProgress, make_reporter

__version__ = _kiln.__version__

__all__ = [
    "build", "load", "deserialize", "Engine", "Context", "TensorInfo", "cuda_available", "build_info", "cli_path",
    "KilnError", "InvalidArgumentError", "FileError", "InvalidModelError", "InvalidPlanError", "VersionMismatchError",
    "UnsupportedError", "OutOfMemoryError", "InternalError",
    "Logger", "StderrLogger", "NullLogger", "Severity", "DataType", "NetworkDefinition", "OnnxParser", "Builder",
    "BuilderConfig", "BuilderFlag", "BuildReport", "PassStat", "Runtime", "CppEngine", "ExecutionContext",
    "TensorDesc", "parse_dtype", "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
Dim = Union[int, str, None]

_LOG = logging.getLogger("kiln")
_LEVELS = {Severity.ERROR: logging.ERROR, Severity.WARNING: logging.WARNING, Severity.INFO: logging.INFO,
           Severity.VERBOSE: logging.DEBUG}

_PRECISIONS = {"fp32": None, "float32": None, "f32": None, "float": None,
               "fp16": BuilderFlag.FP16, "float16": BuilderFlag.FP16, "half": BuilderFlag.FP16,
               "bf16": BuilderFlag.BF16, "bfloat16": BuilderFlag.BF16, "int8": BuilderFlag.INT8,
               "tf32": "tf32"}


class _LoggingLogger(Logger):
    """Forwards kiln's messages to the `logging` logger "kiln" (VERBOSE -> DEBUG) and/or a user Logger."""

    def __init__(self, forward: Optional[Logger] = None, progress: Optional[BuildProgress] = None):
        super().__init__()
        self.forward = forward
        self.progress = progress

    def log(self, severity: Severity, message: str) -> None:
        if self.progress is not None and message.startswith("pass "):
            self.progress.on_pass(message)  # Python code runs here, so a pending Ctrl-C raises KeyboardInterrupt
        if self.forward is not None:
            self.forward.log(severity, message)
        else:
            _LOG.log(_LEVELS.get(severity, logging.INFO), "%s", message)


_RUNTIME_LOGGER = _LoggingLogger()
_RUNTIME = Runtime(_RUNTIME_LOGGER)


def cuda_available() -> bool:
    """True when this build of kiln has the CUDA backend compiled in (a GPU must still be present to run)."""
    return bool(build_info()["cuda"])


def cli_path() -> str:
    """Path of the `kiln` command-line executable shipped inside the package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "kiln")


class TensorInfo(NamedTuple):
    """An engine input or output: name, shape (int, or str for a named symbolic dim, or None) and numpy dtype
    name ("float32", "int64", "bfloat16", ...)."""

    name: str
    shape: Tuple[Dim, ...]
    dtype: str


def _tensor_infos(descs: Iterable[TensorDesc]) -> List[TensorInfo]:
    return [TensorInfo(d.name, tuple(d.shape), d.numpy_dtype) for d in descs]


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


def _as_input(name: str, value: Any, dtype: Optional[str]) -> Any:
    """numpy arrays and DLPack tensors pass through (C-contiguous ones without copying); anything else (lists,
    scalars) goes through numpy.asarray with the engine's dtype. torch tensors that require grad are detached."""
    if isinstance(value, np.ndarray):
        return value.view(np.uint16) if value.dtype.name == "bfloat16" else value
    if hasattr(value, "__dlpack__"):
        if getattr(value, "requires_grad", False) and hasattr(value, "detach"):
            value = value.detach()
        return value
    try:
        array = np.asarray(value, dtype=dtype if dtype not in (None, "bfloat16") else None)
    except Exception as e:  # noqa: BLE001 - report the input by name
        raise InvalidArgumentError(f"input '{name}': cannot convert {type(value).__name__} to an array: {e}") from e
    if array.dtype == object:
        raise InvalidArgumentError(f"input '{name}': cannot convert {type(value).__name__} to a numeric array")
    return array


class Context:
    """Runs an Engine: per-thread state (activation memory). Make one per thread with Engine.create_context()."""

    def __init__(self, engine: "Engine", threads: Optional[int] = None):
        self._engine = engine
        self._ctx = engine._cpp.create_context()
        if threads is not None:
            self.threads = threads

    @property
    def engine(self) -> "Engine":
        return self._engine

    @property
    def threads(self) -> int:
        """Threads the kernels may use (ExecutionContext::set_num_threads)."""
        return self._ctx.num_threads

    @threads.setter
    def threads(self, n: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidArgumentError(f"threads must be a positive int, got {n!r}")
        self._ctx.num_threads = n

    @property
    def cpp(self) -> ExecutionContext:
        """The low-level kiln.ExecutionContext behind this context."""
        return self._ctx

    def run(self, inputs: Optional[Mapping[str, Any]] = None, *, output: str = "numpy",
            **named_inputs: Any) -> Dict[str, Any]:
        """Runs the engine and returns {output name: array} in the engine's output order.

        Args:
            inputs: {input name: array}; arrays are numpy arrays, any DLPack tensor (torch, cupy, jax) on the
                CPU, or anything numpy.asarray accepts. dtypes must match the engine (see Engine.inputs);
                symbolic dims take any size, consistently across inputs.
            output: "numpy" (default): numpy arrays that own kiln's output buffers (no copy); "dlpack":
                framework-neutral arrays with __dlpack__, for torch.from_dlpack and friends; "cuda" (GPU
                engines): DLPack arrays in GPU memory (torch.from_dlpack gives a CUDA tensor, no copy).
                GPU engines read CUDA inputs (torch/cupy tensors) in place, without a trip through the host.
            **named_inputs: inputs by keyword, e.g. ctx.run(input_ids=ids, attention_mask=mask).

        Raises:
            InvalidArgumentError: a missing/unknown input, wrong shape or dtype (the message names the tensor).
            UnsupportedError: a device (GPU) tensor or output="cuda" for an engine that runs on the host.
        """
        feeds = dict(inputs or {})
        feeds.update(named_inputs)
        dtypes = {d.name: d.numpy_dtype for d in self._engine._cpp.inputs}
        feeds = {name: _as_input(name, value, dtypes.get(name)) for name, value in feeds.items()}
        out = self._ctx.run(feeds, output)
        if output == "numpy":
            for info in self._engine.outputs:
                if info.dtype == "bfloat16" and info.name in out and _bfloat16() is not None:
                    out[info.name] = out[info.name].view(_bfloat16())
        return out

    __call__ = run

    def set_profiling(self, on: bool = True) -> None:
        """Records per-layer times of each run; read them with profile()."""
        self._ctx.set_profiling(on)

    def profile(self) -> List[Tuple[str, float]]:
        """[(layer name, milliseconds)] of the last run, when profiling is on."""
        return self._ctx.last_profile()


class Engine:
    """An optimised model: immutable, shareable across threads. Made by kiln.build() or kiln.load()."""

    def __init__(self, cpp_engine: CppEngine, threads: Optional[int] = None,
                 report: Optional[BuildReport] = None):
        self._cpp = cpp_engine
        self._threads = threads
        self._report = report
        self._default_ctx: Optional[Context] = None

    @property
    def inputs(self) -> List[TensorInfo]:
        """Inputs: (name, shape, dtype); symbolic dims are str (e.g. "batch"), unknown dims None."""
        return _tensor_infos(self._cpp.inputs)

    @property
    def outputs(self) -> List[TensorInfo]:
        """Outputs: (name, shape, dtype), shapes as declared by the model."""
        return _tensor_infos(self._cpp.outputs)

    @property
    def input_names(self) -> List[str]:
        return [d.name for d in self._cpp.inputs]

    @property
    def output_names(self) -> List[str]:
        return [d.name for d in self._cpp.outputs]

    @property
    def layers(self) -> List[dict]:
        """One dict per layer: name, op_type, backend, kernel, inputs, outputs, fused_from, attributes."""
        return self._cpp.layers

    @property
    def memory(self) -> dict:
        """The memory plan: arena_bytes (activations per context), weight_bytes, naive_bytes, ..."""
        return self._cpp.memory

    @property
    def backend(self) -> str:
        return self._cpp.target_backend

    @property
    def build_report(self) -> Optional[BuildReport]:
        """What the optimiser did (per-pass node counts and times); None for loaded engines."""
        return self._report

    @property
    def cpp(self) -> CppEngine:
        """The low-level kiln.CppEngine behind this engine."""
        return self._cpp

    def save(self, path: PathLike) -> None:
        """Writes the engine plan to `path` atomically (versioned, checksummed); kiln.load() reads it back."""
        self._cpp.save(os.fspath(path))

    def serialize(self) -> bytes:
        """The engine plan as bytes; kiln.deserialize() reads it back."""
        return self._cpp.serialize()

    def create_context(self, threads: Optional[int] = None) -> Context:
        """A new execution context (one per thread). `threads` defaults to the engine's (kiln.build/load)."""
        return Context(self, threads if threads is not None else self._threads)

    def run(self, inputs: Optional[Mapping[str, Any]] = None, *, output: str = "numpy",
            **named_inputs: Any) -> Dict[str, Any]:
        """Runs on a default context owned by the engine (not thread-safe: use create_context() per thread)."""
        if self._default_ctx is None:
            self._default_ctx = self.create_context()
        return self._default_ctx.run(inputs, output=output, **named_inputs)

    def __call__(self, *args: Any, output: str = "numpy", **named_inputs: Any) -> Any:
        """engine(x) for single-input models, engine(a, b) positionally, or engine(name=array). Returns the array
        when the engine has one output, else {name: array}."""
        names = self.input_names
        if len(args) > len(names):
            raise InvalidArgumentError(f"the engine takes {len(names)} input(s) ({', '.join(names)}), "
                                       f"got {len(args)} positional arrays")
        feeds = dict(zip(names, args))
        feeds.update(named_inputs)
        out = self.run(feeds, output=output)
        return next(iter(out.values())) if len(out) == 1 else out

    def __repr__(self) -> str:
        def fmt(infos):
            return ", ".join(f"{i.name}: {i.dtype}[{'x'.join('?' if d is None else str(d) for d in i.shape)}]"
                             for i in infos)
        return f"<kiln.Engine {self.backend} inputs=({fmt(self.inputs)}) outputs=({fmt(self.outputs)})>"


def _check_threads(threads: Optional[int]) -> None:
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise InvalidArgumentError(f"threads must be None or a positive int, got {threads!r}")


def _backend_for(device: str) -> str:
    dev = str(device).lower()
    if dev in ("cpu", "reference"):
        return dev
    if dev == "cuda" or dev == "cuda:0" or dev == "gpu":
        if not cuda_available():
            raise UnsupportedError(f"device={device!r}: the CUDA backend is not available in this build of kiln "
                                   "(built without the CUDA toolkit; kiln.cuda_available() is False). "
                                   "Use device='cpu'.")
        return "cuda"
    raise InvalidArgumentError(f"unknown device {device!r}: use 'cpu', 'reference' or 'cuda'")


def _make_config(precision: str, device: str, opt_level: int, input_shapes, disabled_passes,
                 memory_limit: int) -> BuilderConfig:
    config = BuilderConfig()
    config.backend = _backend_for(device)
    key = str(precision).lower()
    if key not in _PRECISIONS:
        raise InvalidArgumentError(f"unknown precision {precision!r}: use 'fp32', 'bf16' (cuda; CPUs with "
                                   "AVX512-BF16), 'fp16' or 'tf32' (cuda)")
    if _PRECISIONS[key] == "tf32":
        config.tf32 = True  # fp32 tensors on TF32 tensor cores (CUDA)
    elif _PRECISIONS[key] is not None:
        config.set_flag(_PRECISIONS[key])
    if isinstance(opt_level, bool) or not isinstance(opt_level, int) or not 0 <= opt_level <= 3:
        raise InvalidArgumentError(f"opt_level must be an int from 0 to 3, got {opt_level!r}")
    config.opt_level = opt_level
    if input_shapes:
        config.input_shapes = {k: tuple(v) for k, v in input_shapes.items()}
    config.disabled_passes = list(disabled_passes or ())
    config.memory_limit = int(memory_limit or 0)
    config.validate()  # CUDA / fp16 / int8 / bf16 without AVX512-BF16 -> UnsupportedError before any parsing
    return config


def _parse(model: Any, network: NetworkDefinition, logger: Logger) -> None:
    parser = OnnxParser(network, logger)
    if isinstance(model, (str, os.PathLike)):
        parser.parse_file(os.fspath(model))
    elif isinstance(model, (bytes, bytearray, memoryview)):
        parser.parse_bytes(bytes(model), "<bytes>")
    elif hasattr(model, "SerializeToString"):  # onnx.ModelProto
        name = getattr(getattr(model, "graph", None), "name", "") or "model"
        parser.parse_bytes(model.SerializeToString(), f"<onnx.ModelProto {name}>")
    else:
        raise InvalidArgumentError("model must be a path to an .onnx file, the model's bytes, an onnx.ModelProto "
                                   f"or a kiln.NetworkDefinition, got {type(model).__name__}")


def build(model: Any, precision: str = "fp32", device: str = "cpu", opt_level: int = 3,
          threads: Optional[int] = None, timing_cache: Optional[PathLike] = None, *,
          input_shapes: Optional[Mapping[str, Iterable[int]]] = None, disabled_passes: Iterable[str] = (),
          memory_limit: int = 0, progress: Any = None, logger: Optional[Logger] = None) -> Engine:
    """Builds an optimised kiln Engine from an ONNX model.

    Args:
        model: path to an .onnx file, its bytes, an onnx.ModelProto, or a kiln.NetworkDefinition.
        precision: "fp32"; "bf16" (matmuls and convolutions in bfloat16 with fp32 accumulation: device="cuda",
            or a CPU with AVX512-BF16, else UnsupportedError; accuracy: see docs/PERFORMANCE.md); "fp16" and
            "tf32" (device="cuda"). "int8" raises UnsupportedError (it needs calibration).
        device: "cpu" (or "reference", the readable oracle kernels), or "cuda" when kiln is built with CUDA
            (kiln.cuda_available()) and a GPU is present.
        opt_level: 0 (import only) to 3 (every optimiser pass, the default).
        threads: default thread count of the engine's execution contexts (None: 1).
        timing_cache: auto-tuning cache file for device="cuda" (read when present, rewritten with new
            measurements; rebuilds with a warm cache measure nothing). The CPU backend times no kernels.
        input_shapes: fixes symbolic input dims at build time, e.g. {"input": (1, 3, 224, 224)}.
        disabled_passes: optimiser pass names to skip, for debugging.
        memory_limit: maximum activation bytes per execution context (0: no limit); above it the build raises
            OutOfMemoryError.
        progress: True for a progress bar (tqdm when installed, else text on stderr), a tqdm bar, or a callable
            progress(stage: str, fraction: float) called after each phase and optimiser pass.
        logger: a kiln.Logger for kiln's messages (default: the `logging` logger "kiln").

    Returns:
        kiln.Engine: save() it, create_context() per thread, run() or call it.

    Raises:
        FileError: the model file is missing or unreadable.
        InvalidModelError: the ONNX model is malformed or truncated (the message names the file and node).
        UnsupportedError: an op kiln lacks (every such node is listed), or an unsupported precision/device.
        InvalidArgumentError: a bad argument (unknown precision, opt_level out of range, unknown pass, ...).
        KeyboardInterrupt: Ctrl-C; kiln checks for it between the build phases and optimiser passes.

    Example::

        engine = kiln.build("resnet50.onnx", progress=True)
        probs = engine(np.random.rand(1, 3, 224, 224).astype(np.float32))
    """
    _check_threads(threads)
    if timing_cache is not None and not isinstance(timing_cache, (str, os.PathLike)):
        raise InvalidArgumentError(f"timing_cache must be a path or None, got {type(timing_cache).__name__}")
    config = _make_config(precision, device, opt_level, input_shapes, disabled_passes, memory_limit)
    if timing_cache is not None:
        config.timing_cache = os.fspath(timing_cache)
    tracker = BuildProgress(make_reporter(progress))
    build_logger = _LoggingLogger(logger, tracker)
    tracker.report("parse", 0.0)
    if isinstance(model, NetworkDefinition):
        network = model
    else:
        network = NetworkDefinition()
        _parse(model, network, build_logger)  # GIL released inside; Ctrl-C is seen right after
    tracker.report("optimize", 0.25)
    report = BuildReport()
    cpp_engine = Builder(build_logger).build(network, config, report)
    build_logger.progress = None  # the engine keeps its logger; the progress bar is done
    tracker.report("done", 1.0)
    return Engine(cpp_engine, threads, report)


def load(path: PathLike, threads: Optional[int] = None) -> Engine:
    """Loads an engine plan written by Engine.save() or `kiln build`.

    Raises FileError (missing file), InvalidPlanError (corrupted, checksum mismatch) or VersionMismatchError
    (written by another kiln version: rebuild it)."""
    _check_threads(threads)
    return Engine(_RUNTIME.load(os.fspath(path)), threads)


def deserialize(data: bytes, threads: Optional[int] = None, source: str = "<memory>") -> Engine:
    """An engine from plan bytes (Engine.serialize()); errors as for load()."""
    _check_threads(threads)
    return Engine(_RUNTIME.deserialize(bytes(data), source), threads)
