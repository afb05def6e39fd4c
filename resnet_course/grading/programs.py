"""A student's module as evidence: its ``torch.export`` graph, in a form the grader loads without running code.

The kernel exports the module (``torch.export.export``: a graph of aten operations, each
node with the source file and line it was traced from) and writes it with
:func:`save`, as plain data (strings, numbers, lists, dicts and tensors) that
``torch.load(weights_only=True)`` reads back. ``torch.export.load`` is not used: it
unpickles parts of the archive (its documentation says never to load an untrusted file
with it), and the file the kernel hands over is hostile input.

:class:`Program` is the grader's side: it checks every operation against an allow-list
of aten operations, and runs the graph itself, with weights and inputs of its own choosing
(:class:`ProgramModule` makes it an ``nn.Module``, so autograd, ``train()``/``eval()`` and
``load_state_dict`` work as for any module). Nothing in the file is ever executed as code.
"""

from __future__ import annotations

import io
import operator
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

MAX_BYTES = 400_000_000  # a ResNet-50's weights in float32 are about 100 MB
MAX_NODES = 5_000  # ten times a ResNet-50's graph (497 nodes in eval mode)
MAX_ELEMENTS = 50_000_000  # per tensor an operation makes: 200 MB of floats

# The operations a residual network's forward pass may use; anything else is refused unread.
ALLOWED_OPERATIONS = frozenset(
    f"aten.{name}"
    for name in """
    conv2d.default convolution.default conv2d.padding
    batch_norm.default native_batch_norm.default _native_batch_norm_legit_functional.default
    _native_batch_norm_legit_no_training.default _native_batch_norm_legit.default
    _native_batch_norm_legit.no_stats
    relu.default relu_.default hardtanh.default hardtanh_.default leaky_relu.default
    leaky_relu_.default sigmoid.default tanh.default gelu.default silu.default silu_.default
    add.Tensor add_.Tensor add.Scalar add_.Scalar sub.Tensor sub.Scalar sub_.Tensor rsub.Scalar
    mul.Tensor mul_.Tensor mul.Scalar mul_.Scalar div.Tensor div.Scalar div_.Tensor neg.default
    sqrt.default rsqrt.default pow.Tensor_Scalar abs.default clamp.default clamp_min.default
    maximum.default minimum.default where.self gt.Scalar lt.Scalar ge.Scalar le.Scalar
    cat.default stack.default pad.default constant_pad_nd.default
    slice.Tensor select.int narrow.default index_select.default split.Tensor split_with_sizes.default
    chunk.default unbind.int view.default reshape.default _unsafe_view.default flatten.using_ints
    unflatten.int permute.default transpose.int t.default expand.default unsqueeze.default
    squeeze.dim squeeze.dims squeeze.default contiguous.default clone.default alias.default
    detach.default lift_fresh_copy.default _to_copy.default to.dtype to.dtype_layout type_as.default
    copy_.default copy.default zero_.default fill_.Scalar zeros.default zeros_like.default ones.default
    ones_like.default new_zeros.default new_ones.default empty.memory_format full.default
    full_like.default arange.default arange.start
    mean.dim mean.default sum.dim_IntList sum.default var.correction var_mean.correction
    amax.default max.dim
    adaptive_avg_pool2d.default _adaptive_avg_pool2d.default avg_pool2d.default
    max_pool2d.default max_pool2d_with_indices.default
    linear.default addmm.default mm.default matmul.default bmm.default
    dropout.default native_dropout.default feature_dropout.default
    _assert_tensor_metadata.default sym_size.int
    """.split()
)
_GETITEM = "_operator.getitem"


class ProgramError(Exception):
    """A program the grader will not run; the message is a sentence for the report."""


# --- the kernel's side: export and write -------------------------------------------------------


def _encode(value):
    if isinstance(value, torch.fx.Node):
        return {"node": value.name}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": "cpu"}
    if isinstance(value, (torch.memory_format, torch.layout)):
        return {"enum": str(value).removeprefix("torch.")}
    raise ProgramError(f"the graph holds an argument of type {type(value).__name__}.")


def describe(exported) -> dict:
    """An ExportedProgram as plain data: nodes, signature and constants (no weights)."""
    nodes = []
    for node in exported.graph.nodes:
        target = _GETITEM if node.target is operator.getitem else str(node.target)
        stack = node.meta.get("nn_module_stack") or {}
        nodes.append(
            {
                "name": node.name,
                "op": node.op,
                "target": target,
                "args": _encode(node.args),
                "kwargs": {k: _encode(v) for k, v in node.kwargs.items()},
                "trace": node.meta.get("stack_trace") or "",
                "modules": [[str(path), str(kind)] for path, kind in stack.values()],
            }
        )
    signature = exported.graph_signature
    return {
        "nodes": nodes,
        "inputs": [[s.kind.name, s.arg.name, s.target] for s in signature.input_specs],
        "outputs": [
            [s.kind.name, getattr(s.arg, "name", None), s.target] for s in signature.output_specs
        ],
        "constants": {
            k: v.detach().clone()
            for k, v in exported.constants.items()
            if isinstance(v, torch.Tensor)
        },
    }


def export(module: nn.Module, example: torch.Tensor, train: bool) -> dict:
    """``module`` exported in training or eval mode on an input shaped like ``example``."""
    module.train(train)
    exported = torch.export.export(module, (example,), strict=False)
    if any(node.op == "get_attr" for node in exported.graph.nodes):
        # A region under a context manager (autocast(enabled=False), no_grad) is exported as a
        # higher-order operation on a submodule: lowered to ATen, its operations are inlined.
        exported = exported.run_decompositions({})
    return describe(exported)


def save(record: dict, path) -> None:
    torch.save(record, path)


def load(path) -> dict:
    """A record written by :func:`save`, read as plain data only (never more than MAX_BYTES)."""
    path = Path(path)
    if not path.is_file() or path.is_symlink():
        raise ProgramError("the check wrote no evidence")
    if path.stat().st_size > MAX_BYTES:
        raise ProgramError(f"its evidence is larger than {MAX_BYTES // 1_000_000} MB")
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    try:
        record = torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # anything weights_only refuses was not written by the probe
        raise ProgramError("its evidence could not be read") from None
    if not isinstance(record, dict):
        raise ProgramError("its evidence is not a record")
    return record


# --- the grader's side: check and run ----------------------------------------------------------


_FRAME = re.compile(
    r'File "(?P<file>[^"]+)", line (?P<line>\d+), in \S+(?:\n {4}(?P<code>[^\n]*))?'
)
_TORCH_DIR = str(Path(torch.__file__).resolve().parent)
_STDLIB = str(Path(sysconfig.get_paths()["stdlib"]).resolve())
_CELL = re.compile(r"(^|/)ipykernel_\d+/(?P<hash>\d+)\.py$|^<ipython-input-\d+-[0-9a-f]+>$")
_TIMED = ("<timed exec>", "<timed eval>")  # IPython's %%time and %time


def frames(trace: str) -> list[tuple[str, int, str]]:
    """(file, line, code shown) of each frame of a node's stack trace, outermost first."""
    return [(m["file"], int(m["line"]), (m["code"] or "").strip()) for m in _FRAME.finditer(trace)]


def is_library_file(path: str) -> bool:
    """PyTorch's or Python's own files: the layers and machinery a student's code calls."""
    try:
        resolved = str(Path(path).resolve())
    except (OSError, ValueError):
        return False
    return resolved.startswith((_TORCH_DIR + "/", _STDLIB + "/"))


def _in_a_cell(path: str, line: int, code: str, cells: dict[str, str] | None) -> bool:
    """Whether a frame is in the notebook's own code (``cells``: see :func:`notebook_code`).

    With the code known (the grader's case), the frame's file must be named by the hash of
    one of its cells (or of a cell magic's body), or be a file a ``%%writefile`` cell wrote,
    and the line it shows must be that source's line; code run under ``%%time`` counts where
    a cell starts with it. Without (a check cell in Jupyter), any cell counts, and any file
    in the notebook's own folder.
    """
    match = _CELL.search(path)
    if cells is None:
        return bool(match) or path in _TIMED or _in_working_folder(path)
    if path in _TIMED:
        return any(source.lstrip().startswith(("%%time", "%time")) for source in cells.values())
    if match and match["hash"] and match["hash"] in cells:
        source = cells[match["hash"]]
    else:
        source = cells.get(_WRITTEN + Path(path).name)
    if source is None:
        return False
    lines = source.splitlines()
    return 0 < line <= len(lines) and bool(code) and lines[line - 1].strip() == code


def _in_working_folder(path: str) -> bool:
    try:
        return Path(path).resolve().parent == Path.cwd().resolve()
    except (OSError, ValueError):
        return False


_WRITTEN = "written:"  # notebook_code's key for a file a %%writefile cell wrote
_CELL_MAGIC = re.compile(r"\A\s*%%(?P<magic>\w+)(?P<arguments>[^\n]*)\n")


def notebook_code(sources) -> dict[str, str]:
    """Every name the notebook's own code can run under, with its source.

    ipykernel names a cell's code by a hash of its source; a cell magic that runs its body
    (``%%capture``, ``%%time``) runs it under the hash of the body; a module a ``%%writefile``
    cell wrote runs under its file name. A student's code in any of these is the notebook's.
    """
    code = {}
    for source in sources:
        code[cell_file_hash(source)] = source
        magic = _CELL_MAGIC.match(source)
        if magic is None:
            continue
        body = source[magic.end() :]
        if magic["magic"] == "writefile":
            target = [a for a in magic["arguments"].split() if not a.startswith("-")]
            if target:
                code[_WRITTEN + Path(target[-1]).name] = body
        else:
            code[cell_file_hash(body)] = body
    return code


def cell_file_hash(source: str) -> str:
    """The name ipykernel gives the code of a cell whose source is ``source``."""
    from ipykernel.compiler import get_tmp_hash_seed, murmur2_x86

    return str(murmur2_x86(source, get_tmp_hash_seed()))


def _resolve(target: str):
    if target == _GETITEM:
        return operator.getitem
    if target not in ALLOWED_OPERATIONS:
        raise ProgramError(f"its graph uses {target}, which a residual block has no use for")
    _, name, overload = target.split(".")
    return getattr(getattr(torch.ops.aten, name), overload)


def _decode(value, env: dict):
    if isinstance(value, list):
        return [_decode(v, env) for v in value]
    if isinstance(value, dict):
        if "node" in value:
            return env[value["node"]]
        if "dtype" in value:
            dtype = getattr(torch, str(value["dtype"]), None)
            if not isinstance(dtype, torch.dtype):
                raise ProgramError("its graph names an unknown dtype")
            return dtype
        if "device" in value:
            return torch.device("cpu")
        if "enum" in value:
            found = getattr(torch, str(value["enum"]), None)
            if not isinstance(found, (torch.memory_format, torch.layout)):
                raise ProgramError("its graph names an unknown layout")
            return found
        raise ProgramError("its graph holds an argument the grader cannot read")
    return value


@dataclass
class Node:
    name: str
    op: str
    target: str
    args: list
    kwargs: dict
    trace: str
    modules: list  # [[path, type], ...], outermost first


def _meta(value):
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    if isinstance(value, list):
        return [_meta(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_meta(v) for v in value)
    if isinstance(value, torch.device):
        return torch.device("meta")
    return value


def _check_size(function, args, kwargs, target: str) -> None:
    """Run the operation on shapes alone first: nothing it makes may exceed MAX_ELEMENTS."""
    if function is operator.getitem:
        return
    kwargs = dict(kwargs)
    if "device" in kwargs:
        kwargs["device"] = torch.device("meta")
    try:
        made = function(*_meta(args), **kwargs)
    except Exception:  # the real call will say what is wrong
        return
    for tensor in made if isinstance(made, (list, tuple)) else [made]:
        if isinstance(tensor, torch.Tensor) and tensor.numel() > MAX_ELEMENTS:
            raise ProgramError(f"its graph's {target} makes a tensor of {tensor.numel():,} numbers")


class Program:
    """One exported graph, checked: every operation allowed, every name and argument plain."""

    def __init__(self, data: dict):
        try:
            self.nodes = [
                Node(**{k: n[k] for k in Node.__dataclass_fields__}) for n in data["nodes"]
            ]
            self.inputs = [(str(k), str(a), t) for k, a, t in data["inputs"]]
            self.outputs = [(str(k), n, t) for k, n, t in data["outputs"]]
            self.constants = dict(data.get("constants", {}))
        except (KeyError, TypeError, ValueError):
            raise ProgramError("its evidence is not an exported program") from None
        if len(self.nodes) > MAX_NODES:
            raise ProgramError(f"its graph has more than {MAX_NODES:,} nodes")
        self.functions = {}
        for node in self.nodes:
            if node.op == "call_function":
                self.functions[node.name] = _resolve(node.target)
            elif node.op not in ("placeholder", "output"):
                raise ProgramError(f"its graph holds a {node.op} node")
        kinds = {kind for kind, _, _ in self.inputs}
        if not kinds <= {"USER_INPUT", "PARAMETER", "BUFFER", "CONSTANT_TENSOR"}:
            raise ProgramError("its graph takes inputs other than tensors")
        if sum(kind == "USER_INPUT" for kind, _, _ in self.inputs) != 1:
            raise ProgramError("its graph does not take exactly one input")

    @property
    def operations(self) -> list[Node]:
        return [node for node in self.nodes if node.op == "call_function"]

    def state_names(self) -> dict[str, str]:
        """Placeholder name -> state_dict name, for parameters and buffers."""
        return {a: t for k, a, t in self.inputs if k in ("PARAMETER", "BUFFER")}

    def run(self, state: dict[str, torch.Tensor], x: torch.Tensor):
        env = {}
        # A graph lowered to ATen returns its buffers' new values instead of changing them: it
        # reads a copy, so that the buffer can take its new value while autograd keeps the copy.
        mutated = {target for kind, _, target in self.outputs if kind == "BUFFER_MUTATION"}
        for kind, argument, target in self.inputs:
            if kind == "USER_INPUT":
                env[argument] = x
            elif kind == "CONSTANT_TENSOR":
                env[argument] = self.constants[target]
            else:
                if target not in state:
                    raise ProgramError(f"its graph reads {target}, which the module does not hold")
                env[argument] = state[target].clone() if target in mutated else state[target]
        result = None
        for node in self.nodes:
            if node.op == "call_function":
                args = _decode(node.args, env)
                kwargs = {k: _decode(v, env) for k, v in node.kwargs.items()}
                _check_size(self.functions[node.name], args, kwargs, node.target)
                env[node.name] = self.functions[node.name](*args, **kwargs)
            elif node.op == "output":
                result = _decode(node.args, env)
        outputs = result[0] if isinstance(result, list) and len(result) == 1 else result
        values = outputs if isinstance(outputs, list) else [outputs]
        user = [v for (kind, _, _), v in zip(self.outputs, values) if kind == "USER_OUTPUT"]
        for (kind, _, target), value in zip(self.outputs, values):
            if kind == "BUFFER_MUTATION" and target in state:
                with torch.no_grad():
                    state[target].copy_(value)
        if len(user) != 1:
            raise ProgramError("its forward does not return one tensor")
        return user[0]


class ProgramModule(nn.Module):
    """An exported module, run by the grader: the train graph in training mode, the eval graph in eval mode.

    Its parameters and buffers have the student's names and shapes; their values are
    whatever is loaded into it (``load_state_dict``), the grader's own for a verdict.
    """

    def __init__(
        self, programs: dict[str, Program], state: dict[str, torch.Tensor], parameters: set
    ):
        super().__init__()
        self.programs = programs
        self._names = {}
        for index, (name, value) in enumerate(state.items()):
            key = f"t{index}"
            self._names[name] = key
            if name in parameters:
                self.register_parameter(key, nn.Parameter(value.detach().clone().float()))
            else:
                self.register_buffer(key, value.detach().clone())

    def tensors(self) -> dict[str, torch.Tensor]:
        own = dict(self.named_parameters()) | dict(self.named_buffers())
        return {name: own[key] for name, key in self._names.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``state`` (by the student's names) into the module's tensors."""
        tensors = self.tensors()
        with torch.no_grad():
            for name, value in state.items():
                tensors[name].copy_(value)

    def forward(self, x):
        mode = "train" if self.training else "eval"
        if mode not in self.programs:
            raise ProgramError(f"no graph was exported in {mode} mode")
        return self.programs[mode].run(self.tensors(), x)


def _inside(path: str, package: str) -> str | None:
    """``package/...`` for a file of that installed package (the course, torchvision), else None."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if not (spec and spec.origin and path.startswith("/")):
        return None
    folder, resolved = Path(spec.origin).resolve().parent, Path(path).resolve()
    return (
        resolved.relative_to(folder.parent).as_posix() if resolved.is_relative_to(folder) else None
    )


def whose(path: str) -> str:
    """How a report names a file the graph's operations came from."""
    if course := _inside(path, "resnet_course"):
        return f"the course's own code ({course})"
    if vision := _inside(path, "torchvision"):
        return f"torchvision's code ({vision})"
    return f"`{path}`"


def foreign_source(
    program: Program,
    cells: dict[str, str] | None,
    allowed: tuple[str, ...] = (),
    through_cells: bool = True,
) -> str | None:
    """Where the graph's operations came from, if not only from the notebook's cells (else None).

    Every operation's stack trace may pass through PyTorch's and Python's own files, the
    notebook's cells (``cells``: hash -> source, see :func:`_in_a_cell`; None: any cell) and
    the course files named in ``allowed``; each operation must come through a cell or an
    allowed file (unless ``through_cells`` is off: a network of PyTorch's containers holds
    operations of PyTorch's alone). Anything else (the course's blocks, torchvision, code run
    from a string or a file) is named in the answer.
    """
    for node in program.operations:
        through_own_code = False
        for path, line, code in frames(node.trace):
            if is_library_file(path):
                continue
            if _in_a_cell(path, line, code, cells) or _inside(path, "resnet_course") in allowed:
                through_own_code = True
            else:
                return whose(path)
        if through_cells and not through_own_code:
            return "operations whose trace reaches none of this notebook's cells"
    return None
