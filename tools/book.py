"""The book build: reading its table of contents, and the Sphinx extension ``_config.yml`` loads.

A tool of the repository, not of the package: ``_config.yml`` names it under
``sphinx: local_extensions: tools.book: .``, which puts the book's root on ``sys.path`` for
the build, so nothing has to be installed for Sphinx to import it. Nothing here runs in a
chapter, so editing it does not re-execute the book. The extension keeps the built book self-contained and
free of errors in the reader's browser (each fix below was seen in headless Chromium):

* It stops the build with one clear sentence when the offline assets (MathJax, require.js,
  the widget renderer, fetched from npm by ``make book``) are missing, instead of
  Sphinx's warning about a missing static path.
* It drops repeated inline scripts. sphinx-thebe adds an inline configuration script
  after the HTML builder has started, and Sphinx 7.4 then lists it twice (once named
  ``None``, once ``''``): every page declared ``const THEBE_JS_URL`` twice, a SyntaxError.
* On pages with widgets it runs :data:`WIDGET_SUPPORT_JS` just before require.js.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

# Run on widget pages just before require.js; {assets} is embed-amd.js's folder from the site root.
WIDGET_SUPPORT_JS = """
// 1. embed-amd.js loads its icon fonts from next to the AMD modules it defines
//    (@jupyter-widgets/html-manager/dist/libembed-amd, @jupyter-widgets/base, ...), which
//    require.js resolves against the page's folder (a 404 for every font): map those
//    module paths to the folder in _static that holds embed-amd.js and its fonts.
var require = {paths: {
    "@jupyter-widgets/html-manager/dist": document.documentElement.dataset.content_root + "{assets}",
    "@jupyter-widgets": document.documentElement.dataset.content_root + "{assets}"}};
// 2. ipywidgets typesets widget labels with MathJax 2's MathJax.Hub.Queue, but the book
//    runs MathJax 3 (TypeError: reading 'Queue'): give MathJax 3 a Hub that does the same.
document.addEventListener("DOMContentLoaded", function () {
    var mathjax = window.MathJax;
    if (!mathjax || !mathjax.startup || mathjax.Hub) return;
    mathjax.Hub = {Queue: function (job) {
        var element = Array.isArray(job) ? job[2] : undefined;
        mathjax.startup.promise = mathjax.startup.promise.then(function () {
            return mathjax.typesetPromise(element ? [element] : undefined);
        });
    }};
});
"""


# ---------------------------------------------------------------- the Sphinx extension


class OfflineAssetsMissing(RuntimeError):
    pass


def check_offline_assets(app) -> None:
    """Fail early, and say what to do, when ``mathjax_path`` is in none of the static folders."""
    mathjax = app.config.mathjax_path
    if "://" in mathjax:
        return  # MathJax from a CDN: nothing of ours to check
    folders = [Path(app.confdir, folder) for folder in app.config.html_static_path]
    if not any((folder / mathjax).is_file() for folder in folders):
        raise OfflineAssetsMissing(
            f"The book's offline assets are missing ({mathjax} is in none of {[str(f) for f in folders]}): "
            "run `make book`, which fetches MathJax and the widget renderer with npm once."
        )


def unique_scripts(scripts: list) -> list:
    """``scripts`` without repeats, taking an inline script named ``None`` and one named ``''`` as one."""
    seen, unique = set(), []
    for script in scripts:
        key = (
            str(script.filename or ""),
            script.priority,
            tuple(sorted(script.attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    return unique


def _fix_page_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    scripts[:] = unique_scripts(scripts)  # in place: Sphinx restores the list after each page
    names = [str(script.filename or "") for script in scripts]
    require = next((i for i, name in enumerate(names) if name.endswith("require.js")), None)
    embed = next((name for name in names if name.endswith("embed-amd.js")), None)
    if require is None or embed is None or "://" in embed:
        return
    body = WIDGET_SUPPORT_JS.replace("{assets}", posixpath.dirname(embed))
    app.add_js_file(None, body=body, priority=scripts[require].priority)  # appended last...
    scripts.insert(require, scripts.pop())  # ...and moved to just before require.js


def setup(app):
    app.connect("builder-inited", check_offline_assets)
    # After every extension has added its page scripts (myst-nb's widget scripts included).
    app.connect("html-page-context", _fix_page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
