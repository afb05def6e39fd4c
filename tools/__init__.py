"""The course repository's tools, run from the root of a clone and not shipped in the package.

* ``python -m tools.bench``: speed measurements (throughput, chapter and book times, the degradation clock).
* ``python -m tools.reproduce``: the paper's CIFAR-10 table, one JSON record per network.
* ``python -m tools.scale_study``: the cheapest configuration that shows each chapter's claim.
* ``tools/book.py``: the Sphinx extension the book build loads (see ``_config.yml``).

They import the package (``resnet_course``); the package never imports them, except that
``python -m resnet_course bench`` and ``reproduce`` hand over to the first two when they can.
"""
