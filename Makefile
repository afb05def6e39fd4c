# Two commands on a fresh machine:  make book  (build the course)  and  make test  (prove it).
# Both create the virtual environment .venv on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test clean

# The book is built with the cpu preset unless RESNET_COURSE_PRESET says otherwise: the one
# preset of the published book, CI and a reader's CPU (the whole book within 25 minutes on 2 cores).
export RESNET_COURSE_PRESET ?= cpu
# Chapters run in chapters/, the tests in the root: a relative data or cache folder given on the
# command line (RESNET_COURSE_DATA=../shared/data) is made absolute here, so both find it.
ifdef RESNET_COURSE_DATA
override RESNET_COURSE_DATA := $(abspath $(RESNET_COURSE_DATA))
export RESNET_COURSE_DATA
endif
ifdef RESNET_COURSE_CACHE
override RESNET_COURSE_CACHE := $(abspath $(RESNET_COURSE_CACHE))
export RESNET_COURSE_CACHE
endif

# EXTRAS: the optional dependencies installed with the course (the Pages build needs only `book`).
# TORCH_INDEX: where torch comes from, when set (the Pages build: the CPU-only wheels, not CUDA's GBs).
EXTRAS ?= book,test
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(if $(TORCH_INDEX),$(PYTHON) -m pip install torch torchvision --index-url $(TORCH_INDEX))
	$(PYTHON) -m pip install -e ".[$(EXTRAS)]"
	$(PYTHON) -m ipykernel install --sys-prefix --name python3
	touch $(STAMP)

# The built book works with no network: MathJax, require.js and the ipywidgets
# renderer are installed from npm at exact versions and served from the book's own
# _static/vendor/ (_config.yml points there), never from a CDN. Nothing is committed.
# html-manager 1.0.15 is the renderer released with ipywidgets 8.1 / jupyterlab_widgets 3
# (same @jupyter-widgets/base ^6.0.12 and controls ^5.0.13); embed-amd.js finds its icon
# fonts next to itself, so they are copied with it.
VENDOR := _build/vendor
VENDOR_STATIC := $(VENDOR)/static/vendor
NPM_PACKAGES := mathjax@3.2.2 requirejs@2.3.7 @jupyter-widgets/html-manager@1.0.15
NODE_MODULES := $(VENDOR)/npm/node_modules

$(VENDOR)/.installed: Makefile
	@command -v npm >/dev/null || { echo "make book needs npm (Node.js) once, to fetch MathJax and the widget renderer for the offline book."; exit 1; }
	rm -rf $(VENDOR)
	npm install --prefix $(VENDOR)/npm --no-save --no-audit --no-fund --ignore-scripts $(NPM_PACKAGES)
	mkdir -p $(VENDOR_STATIC)/requirejs $(VENDOR_STATIC)/html-manager
	cp -R $(NODE_MODULES)/mathjax/es5 $(VENDOR_STATIC)/mathjax
	cp $(NODE_MODULES)/requirejs/require.js $(VENDOR_STATIC)/requirejs/
	cp $(NODE_MODULES)/@jupyter-widgets/html-manager/dist/embed-amd.js \
	   $(NODE_MODULES)/@jupyter-widgets/html-manager/dist/*.woff* \
	   $(NODE_MODULES)/@jupyter-widgets/html-manager/dist/*.ttf \
	   $(NODE_MODULES)/@jupyter-widgets/html-manager/dist/*.eot \
	   $(NODE_MODULES)/@jupyter-widgets/html-manager/dist/*.svg $(VENDOR_STATIC)/html-manager/
	touch $@

# The execution cache recognises a notebook by its cells, not by the package it imports:
# after a change to what chapters import, every chapter is executed again. That is the package
# minus resnet_course/grading/ (the exercises' checks, which no chapter imports); tools/ (the
# benchmark, reproduce, the scale study, this build's Sphinx extension) is outside it, so
# editing a tool does not re-execute the book.
# The scale study's summary is read by the chapters too (their archive tables): a new run there
# must show on the page, not a cached table.
CHAPTER_CODE := $(shell find resnet_course -name '*.py' -not -path 'resnet_course/grading/*')
CHAPTER_DATA := $(wildcard results/scale-study/summary.json)
PACKAGE_STAMP := _build/.package-stamp
$(PACKAGE_STAMP): $(CHAPTER_CODE) $(CHAPTER_DATA) pyproject.toml
	rm -rf _build/.jupyter_cache
	mkdir -p _build && touch $@

# --all re-reads every page (executed notebooks come from the cache), so a notebook that
# failed in an earlier build is run and reported again instead of passing silently.
# RESNET_COURSE_PROGRESS=off: a built page shows what a run found, not the progress bar that
# finished while the book was built (in Jupyter and Colab the bars show as a cell runs).
# A failed build's reports are removed first, so the site never ships an old error log.
book: $(STAMP) $(VENDOR)/.installed $(PACKAGE_STAMP)
	rm -rf _build/html/reports
	RESNET_COURSE_PROGRESS=off $(VENV)/bin/jupyter-book build . --all -W -n --keep-going

test: book
	$(PYTHON) -m pytest

clean:
	rm -rf _build
