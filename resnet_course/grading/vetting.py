"""Reading a student's notebook in the grader's own process, before any of it runs.

The grade comes from evidence the kernel hands over (see :mod:`.probes`), and a
record can pass only if it holds what a correct implementation computes. Two
ways around that remain, and both are visible in the notebook's source:

* **borrowing** the answer: grading the course's own block (the checks' oracle),
  a solution file, or a class built on them, instead of the student's code;
* **reaching into the interpreter**: patching the probes or PyTorch, running
  code from strings or files, starting processes or threads.

So the grader parses every cell the student wrote and refuses, with one sentence
each, what an exercise on residual blocks has no use for. It never runs the code
to find out: parsing is all it does.
"""

from __future__ import annotations

import ast
import functools
import importlib
import sys
import types
from dataclasses import dataclass, field

# What a graded notebook may import (and anything under it, except the paths below).
ALLOWED_IMPORTS = frozenset(
    {
        "__future__",
        "torch",
        "torchvision",
        "numpy",
        "matplotlib",
        "resnet_course",
        "math",
        "typing",
        "dataclasses",
        "functools",
        "itertools",
        "collections",
        "random",
        "time",
        "copy",
        "statistics",
    }
)
FORBIDDEN_MODULES = (
    "torch.hub",
    "torch.multiprocessing",
    "torch.distributed",
    "torch.utils.cpp_extension",
    "torch.library",
    "torch.package",
    "torch.ops",
    "torch.classes",
    "torch.jit",
    "torch.utils.data.datapipes",
    "numpy.ctypeslib",
    "resnet_course.grading.probes",
    "resnet_course.grading.report",
    "matplotlib.pyplot.rcParams",
)
# Libraries' own ResNet blocks: what several checks compare with (exercise 3 against
# torchvision's Bottleneck), so a block that delegates to them is borrowed, like the course's.
ORACLE_MODULES = ("torchvision.models",)
# A module can be reached without importing it under its name: through an alias
# (``t = torch; t.jit``) or through another module (``nn.init.torch.hub``). getattr is refused,
# so the attribute names are in the source: an attribute named as one of these modules is
# refused on any object but ``self``. ``classes`` is left out, as students read ``data.classes``.
_MODULE_ATTRIBUTES = frozenset(bad.split(".")[-1] for bad in FORBIDDEN_MODULES + ORACLE_MODULES) - {
    "classes"
}
# Built-ins that run code from strings or files, or reach into namespaces and objects by name.
FORBIDDEN_NAMES = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "__import__",
        "open",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "breakpoint",
        "input",
        "get_ipython",
        "__builtins__",
        "memoryview",
        "classmethod_descriptor",
    }
)
# Attribute names that load pickled or compiled code, or write files (a notebook could overwrite the course).
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "load",
        "loads",
        "load_library",
        "from_file",
        "system",
        "popen",
        "save",
        "savetxt",
        "savez",
        "savez_compressed",
        "tofile",
        "write",
        "write_text",
        "write_bytes",
        "savefig",
        "to_file",
    }
)
ALLOWED_DUNDERS = frozenset({"__init__", "__name__"})
# The interpreter's own frames and code, reached through a generator, a coroutine or a
# traceback: ``(x for x in []).gi_frame.f_builtins["exec"]`` would run a string.
INTROSPECTION_ATTRIBUTES = frozenset(
    {
        *("gi_frame", "gi_code", "gi_yieldfrom"),
        *("cr_frame", "cr_code", "cr_await", "cr_origin"),
        *("ag_frame", "ag_code", "ag_await"),
        *("f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_trace"),
        *("tb_frame", "tb_next"),
    }
)
# Modules that an allowed one holds as an attribute (``torch.sys``, ``numpy.os``) and that reach
# the interpreter, the course's own modules or the disk. On an object the grader cannot follow
# (an alias, a function's result), or that it has not imported, an attribute of one of these
# names is refused too.
INTERPRETER_MODULE_NAMES = frozenset(
    {
        "sys",
        "os",
        "posix",
        "nt",
        "builtins",
        "importlib",
        "inspect",
        "types",
        "gc",
        "traceback",
        "runpy",
        "code",
        "codeop",
        "pdb",
        "subprocess",
        "multiprocessing",
        "threading",
        "ctypes",
        "pickle",
        "marshal",
        "shelve",
        "shutil",
        "pathlib",
        "tempfile",
        "socket",
        "atexit",
        "site",
        "sysconfig",
        "zipimport",
    }
)


@dataclass
class Vetting:
    """What the grader found in the source: refusals for the whole notebook, and per graded name."""

    refusals: list[str] = field(default_factory=list)  # the notebook is not run at all
    not_own: dict[str, str] = field(
        default_factory=dict
    )  # graded name -> why it is not the student's code

    @property
    def clean(self) -> bool:
        return not self.refusals and not self.not_own


# Magics a student may well use and that change nothing the grade depends on: they are read
# as the code they wrap (``%time x = f()`` as ``x = f()``), and ``%matplotlib`` lines are skipped.
_HARMLESS_LINE_MAGICS = ("%time ", "%timeit ")
_HARMLESS_CELL_MAGICS = ("%%time", "%%timeit", "%%capture")


def _without_harmless_magics(source: str) -> str:
    lines = source.splitlines()
    if lines and lines[0].strip().split(" ")[0] in _HARMLESS_CELL_MAGICS:
        lines = lines[1:]
    out = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("%matplotlib"):
            continue
        for magic in _HARMLESS_LINE_MAGICS:
            if stripped.startswith(magic):
                stripped = stripped[len(magic) :]
        out.append(indent + stripped)
    return "\n".join(out)


def _python_source(source: str) -> str:
    """The cell as Python: IPython's magics and shell escapes become calls of get_ipython()."""
    source = _without_harmless_magics(source)
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # without IPython, a magic line is a refusal all the same
        return "\n".join(
            "get_ipython()" if line.lstrip().startswith(("%", "!")) else line
            for line in source.splitlines()
        )
    return TransformerManager().transform_cell(source)


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


@functools.lru_cache(maxsize=4096)
def _module_outside_the_allowed(path: str) -> str | None:
    """The first module along ``path`` (``torch.sys.modules``) that a notebook may not import."""
    parts = path.split(".")
    if parts[0] not in ALLOWED_IMPORTS:
        return None  # refused as an import already
    try:
        obj = importlib.import_module(parts[0])  # a library the notebook imports too
    except ImportError:
        return None
    for part in parts[1:]:
        if not isinstance(obj, types.ModuleType):
            return None
        obj = sys.modules.get(f"{obj.__name__}.{part}") or obj.__dict__.get(part)
        if isinstance(obj, types.ModuleType):
            name = obj.__name__
            if name.split(".")[0] not in ALLOWED_IMPORTS or any(
                name == bad or name.startswith(bad + ".")
                for bad in FORBIDDEN_MODULES + ORACLE_MODULES
            ):
                return name
    return None


class _Reader(ast.NodeVisitor):
    """Collects one cell's refusals, its import bindings and its top-level definitions."""

    def __init__(self, where: str, imported: dict[str, str]):
        self.where, self.imported, self.refusals = where, imported, []
        self._lines_refused_for_a_module: set[int] = set()  # one sentence per line, not per link

    def refuse(self, node: ast.AST, what: str) -> None:
        self.refusals.append(f"{self.where}, line {getattr(node, 'lineno', '?')}, {what}")

    def _check_module(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if top not in ALLOWED_IMPORTS:
            self.refuse(node, f"imports {module}, which a graded notebook may not use.")
        else:
            self._check_path(node, module, "imports")
            self._check_reached_modules(node, module, "imports")

    def _check_reached_modules(self, node: ast.AST, path: str, verb: str) -> None:
        """Refuse ``path`` if, followed through the real modules, it reaches one outside the allowed.

        Only modules are followed (the grader has them imported already, and looks their
        attributes up without running the student's code); the walk stops at the first object
        that is not a module.
        """
        line = getattr(node, "lineno", 0)
        if line in self._lines_refused_for_a_module:
            return
        reached = _module_outside_the_allowed(path)
        if reached:
            self.refuse(
                node,
                f"{verb} {path}, which reaches the module {reached}, and a graded notebook may not use it.",
            )
            self._lines_refused_for_a_module.add(line)

    def _check_path(self, node: ast.AST, path: str, verb: str) -> None:
        """Refuse ``path`` if a forbidden or oracle module is anywhere in it (``a.torch.hub.x``)."""
        line = getattr(node, "lineno", 0)
        if line in self._lines_refused_for_a_module:
            return  # the chain's longer link on this line was refused already
        refusals = len(self.refusals)
        padded = f".{path}."
        if any(f".{bad}." in padded for bad in ORACLE_MODULES):
            self.refuse(
                node,
                f"{verb} {path}: its ResNet blocks are what the checks compare with, "
                "so write the block yourself.",
            )
        elif any(f".{bad}." in padded for bad in FORBIDDEN_MODULES):
            self.refuse(node, f"{verb} {path}, which a graded notebook may not use.")
        if len(self.refusals) > refusals:
            self._lines_refused_for_a_module.add(line)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            bound = alias.asname or alias.name.split(".")[0]
            self.imported[bound] = alias.name if alias.asname else alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        if node.level:
            self.refuse(node, "makes a relative import, which a notebook cannot use.")
            return
        self._check_module(node, module)
        for alias in node.names:
            if alias.name == "*":
                self.refuse(node, f"imports * from {module}; import the names you use.")
                continue
            self._check_module(node, f"{module}.{alias.name}")
            self.imported[alias.asname or alias.name] = f"{module}.{alias.name}"

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self.refuse(node, f"uses `{node.id}`, which a graded notebook may not use.")
        elif node.id.startswith("__") and node.id.endswith("__") and node.id not in ALLOWED_DUNDERS:
            # e.g. ``__annotations__ = {...}`` in a class body, which typing would evaluate
            self.refuse(node, f"uses `{node.id}`, which a graded notebook may not use.")

    def _check_annotation(self, annotation: ast.AST | None) -> None:
        """Refuse an annotation holding a string: ``typing.get_type_hints`` would run it as code."""
        if annotation is None:
            return
        for n in ast.walk(annotation):
            if isinstance(n, ast.Constant) and isinstance(n.value, str):
                self.refuse(
                    n,
                    "writes a type annotation as a string, which typing would run as code; "
                    "write the type itself.",
                )
                return

    def visit_arg(self, node: ast.arg) -> None:
        self._check_annotation(node.annotation)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_annotation(node.returns)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS:
            self.refuse(node, f"uses `.{name}`, which a graded notebook may not use.")
        elif (
            name.startswith("_") and not name.startswith("__") and _root(node) not in ("self", None)
        ):
            self.refuse(node, f"uses the private attribute `.{name}`.")
        elif name in INTROSPECTION_ATTRIBUTES:
            self.refuse(node, f"uses `.{name}`, the interpreter's own frames and code.")
        elif name in FORBIDDEN_ATTRIBUTES and _root(node) in self.imported:
            self.refuse(
                node,
                f"uses `{_dotted(node) or name}`, which reads or writes files a graded notebook may not touch.",
            )
        dotted = _dotted(node)
        root = _root(node)
        if dotted and root in self.imported:
            full = self.imported[root] + dotted[len(root) :]
            self._check_path(node, full, "uses")
            self._check_reached_modules(node, full, "uses")
        line = getattr(node, "lineno", 0)
        if (
            (name in _MODULE_ATTRIBUTES or name in INTERPRETER_MODULE_NAMES)
            and root != "self"
            and line not in self._lines_refused_for_a_module
        ):
            self.refuse(
                node,
                f"uses `.{name}` on {dotted or 'an expression'}, the name of a module "
                "a graded notebook may not use.",
            )
            self._lines_refused_for_a_module.add(line)
        self.generic_visit(node)

    def _check_target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._check_target(element)
        elif isinstance(target, ast.Starred):
            self._check_target(target.value)
        elif isinstance(target, (ast.Attribute, ast.Subscript)) and _root(target) in self.imported:
            self.refuse(
                target,
                f"changes `{_dotted(target) or _root(target)}`, part of a library; a graded "
                f"notebook may not patch what it imports.",
            )

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_target(node.target)
        self._check_annotation(node.annotation)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "type" and len(node.args) == 3:
            self.refuse(
                node, "builds a class with type(name, bases, namespace); write a class statement."
            )
        self.generic_visit(node)


def _names_used(node: ast.AST) -> set[str]:
    """The names ``node`` reads from outside itself: loads, less its parameters and its own assignments."""
    loads, local = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else local).add(n.id)
        elif isinstance(n, ast.arg):
            local.add(n.arg)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        local = set()  # a top-level statement's assignments are what it binds, not locals
    return loads - local


def _bound_names(statement: ast.stmt) -> set[str]:
    """The names a top-level statement binds."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
    return names


def vet(
    cells: list[tuple[int, str]],
    graded: tuple[str, ...],
    course_names_allowed: frozenset[str] = frozenset(),
    preset_names: frozenset[str] = frozenset({"resnet_course"}),
) -> Vetting:
    """Read the student's code cells (number, source) and the names graded as the student's own code.

    ``course_names_allowed`` are the course's objects an exercise asks the student to use
    (exercise 2 builds its networks from the course's blocks); every other name that
    comes from ``resnet_course`` is an oracle, and a graded definition may not use it,
    not even through a helper or an alias. ``preset_names`` are bound by cells the grader
    puts back itself (the set-up cell imports ``resnet_course``).
    """
    vetting = Vetting()
    imported: dict[str, str] = {name: name for name in preset_names}
    statements: list[tuple[str, ast.stmt]] = []
    for number, source in cells:
        where = f"code cell {number}"
        try:
            tree = ast.parse(_python_source(source))
        except SyntaxError as error:
            # It cannot run either; the run reports it as the cell's error. Nothing to vet in it.
            del error
            continue
        reader = _Reader(where, imported)
        reader.visit(tree)
        vetting.refusals += reader.refusals
        statements += [(where, statement) for statement in tree.body]

    # Which names carry the course's objects: imported from it, or defined from something that is.
    tainted = {
        name
        for name, origin in imported.items()
        if origin.split(".")[0] == "resnet_course"
        and (origin == "resnet_course" or origin.split(".")[-1] not in course_names_allowed)
    }
    changed = True
    while changed:
        changed = False
        for _, statement in statements:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                continue
            if _names_used(statement) & tainted:
                new = _bound_names(statement) - tainted
                if new:
                    tainted |= new
                    changed = True

    for name in graded:
        definitions = [
            (where, s)
            for where, s in statements
            if isinstance(s, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and s.name == name
        ]
        rebinding = [
            where
            for where, s in statements
            if name in _bound_names(s)
            and not (
                isinstance(s, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and s.name == name
            )
        ]
        if not definitions:
            vetting.not_own[name] = (
                f"the notebook has no class or function {name} of its own; write it in a code cell."
            )
        elif rebinding:
            vetting.not_own[name] = (
                f"{rebinding[0]} assigns {name} again; keep the definition you wrote."
            )
        else:
            where, definition = definitions[-1]
            used = sorted(_names_used(definition) & tainted)
            if used:
                vetting.not_own[name] = (
                    f"{name} in {where} uses {', '.join(used[:3])} from the course, which is "
                    f"what the check compares with; write it yourself."
                )
    return vetting
