# Two commands on a fresh machine:  make book  (build the course)  and  make test  (prove it).
# Both create the virtual environment .venv on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test clean

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e ".[book,test]"
	$(PYTHON) -m ipykernel install --sys-prefix --name python3
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: book
	$(PYTHON) -m pytest

clean:
	rm -rf _build
