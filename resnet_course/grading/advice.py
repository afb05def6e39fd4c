"""What the source of a notebook suggests, for the instructor: advice, never a reason not to run it.

The grade does not depend on reading the source (see :mod:`.probes` and :mod:`.sandbox`);
this only points an instructor at lines worth a look, each named as the student wrote it:
the course's reference imported, code run from a string, a process started, a file written
outside the working directory, a pickle loaded. Honest notebooks do some of these too
(a scratch comparison with the course's block, say), which is why it is advice.
"""

from __future__ import annotations

import ast

# The course's reference implementations of what the exercises ask for.
REFERENCE_MODULES = ("resnet_course.blocks", "resnet_course.models", "torchvision.models")
REFERENCE_NAMES = frozenset(
    {"BasicBlock", "Bottleneck", "PreActBlock", "PlainBlock", "ZeroPadShortcut", "ResNet"}
)
_RUNS_STRINGS = frozenset({"exec", "eval", "compile", "__import__"})  # as names or builtins.name
_RUNS_FILES = frozenset({"run_path", "run_module", "import_module", "spec_from_file_location"})
_PROCESSES = frozenset({"system", "popen", "Popen", "run", "call", "check_output", "spawn", "fork"})
_SIGNALS = frozenset({"kill", "killpg", "setsid", "setpgrp"})
_PICKLERS = ("pickle", "dill", "cloudpickle")
_RUNS, _UNPICKLES = "runs code from a string or a file", "unpickles data, which can run code"


def _python(source: str) -> str:
    """The cell as Python, magics turned into the calls IPython makes (``%time x`` -> ``x`` timed)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # IPython missing or a cell it cannot read: the raw source
        return source


def _line(source: str, node: ast.AST) -> str:
    lines = source.splitlines()
    number = getattr(node, "lineno", 0)
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _writes_outside(call: ast.Call) -> bool:
    """``open('/abs/path', 'w')`` or ``open('../x', 'a')``: a write that leaves the working directory."""
    if _name(call.func) != "open" or not call.args:
        return False
    target = call.args[0]
    mode = (
        call.args[1]
        if len(call.args) > 1
        else next((k.value for k in call.keywords if k.arg == "mode"), None)
    )
    writes = isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
    where = target.value if isinstance(target, ast.Constant) else ""
    return writes and isinstance(where, str) and (where.startswith(("/", "~")) or ".." in where)


def cell_flags(
    number: int, source: str, graded=REFERENCE_NAMES, shipped: frozenset = frozenset()
) -> list[str]:
    """Advice on one code cell: a sentence per suspicious line, naming the line.

    ``graded``: the names the exercise grades; importing one of them from the course is flagged.
    ``shipped``: lines the exercise's own notebook ships with, never flagged.
    """
    found = []

    def flag(text: str, reason: str) -> None:
        if text in shipped:
            return
        sentence = f"code cell {number}: `{text[:57] + '...' if len(text) > 60 else text}` {reason}"
        if sentence not in found:
            found.append(sentence)

    for raw in source.splitlines():
        if raw.lstrip().startswith("!") or raw.lstrip().startswith("%%bash"):
            flag(raw.strip(), "runs a shell command")
    python = _python(source)
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module.startswith(REFERENCE_MODULES) or (
                node.module == "resnet_course" and names & set(graded)
            ):
                flag(_line(python, node), "imports the course's or torchvision's reference")
        elif isinstance(node, ast.Import):
            if any(alias.name.startswith(REFERENCE_MODULES) for alias in node.names):
                flag(_line(python, node), "imports the course's or torchvision's reference")
        elif isinstance(node, ast.Call):
            name, owner = _name(node.func), _name(getattr(node.func, "value", None) or node)
            bare = isinstance(node.func, ast.Name) or owner == "builtins"
            pickled = any(
                (k.arg == "weights_only" and getattr(k.value, "value", None) is False)
                or (k.arg == "allow_pickle" and getattr(k.value, "value", None) is True)
                for k in node.keywords
            )
            reason = next(
                (
                    why
                    for rule, why in (
                        ((name in _RUNS_STRINGS and bare) or name in _RUNS_FILES, _RUNS),
                        (name in _PROCESSES and owner in ("os", "subprocess"), "starts a process"),
                        (name in _SIGNALS, "sends signals or leaves its session"),
                        (name in ("load", "loads") and owner in _PICKLERS, _UNPICKLES),
                        (pickled, _UNPICKLES),
                        (_writes_outside(node), "writes outside the working directory"),
                    )
                    if rule
                ),
                None,
            )
            if reason:
                flag(_line(python, node), reason)
    return found


def flags_for(cells: list[tuple[int, str]], exercise=None) -> list[str]:
    """Advice on a notebook's student cells, given as (code cell number, source) pairs."""
    from .shipped import SHIPPED_LINES

    graded, shipped = REFERENCE_NAMES, frozenset()
    if exercise is not None:  # the objects its check cells pass: what the student must write
        graded = {name.strip() for c in exercise.checks for name in c.arguments.split(",")}
        shipped = SHIPPED_LINES.get(exercise.name, frozenset())
    return [s for number, source in cells for s in cell_flags(number, source, graded, shipped)]
