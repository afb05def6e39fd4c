"""glue: values handed to the book's prose must be formattable with ``{glue:text}`name:.2f```."""

import numpy as np
import torch

from resnet_course.notebooks import glue


def test_glue_hands_over_plain_python_numbers_for_numpy_and_tensor_scalars(monkeypatch):
    glued = {}
    import myst_nb

    monkeypatch.setattr(
        myst_nb, "glue", lambda name, value, display=False: glued.__setitem__(name, value)
    )
    glue("numpy", np.float64(0.905))
    glue("tensor", torch.tensor(2.5))
    glue("integer", np.int64(4))
    glue("array", np.array([1.0, 2.0]))  # not a scalar: passed on as it is
    assert type(glued["numpy"]) is float and glued["numpy"] == 0.905
    assert type(glued["tensor"]) is float and glued["tensor"] == 2.5
    assert type(glued["integer"]) is int and glued["integer"] == 4
    assert isinstance(glued["array"], np.ndarray)
    assert format(glued["numpy"], ".2f") == "0.91"


def test_a_number_for_prose_reads_as_a_reader_says_it():
    from IPython.core.formatters import PlainTextFormatter

    from resnet_course.notebooks import readable_number

    shown = PlainTextFormatter()  # what the book's glue takes: text/plain, no quotes
    assert [shown(readable_number(v)) for v in (3.9e6, 1.04e6, 2.1e10, 396.2, 0.1583, 12345.6)] == [
        "3.9 million",
        "1.0 million",
        "21 billion",
        "396",
        "0.158",
        "12,346",
    ]


def test_a_count_for_prose_is_a_word_up_to_ten():
    from IPython.core.formatters import PlainTextFormatter

    from resnet_course.notebooks import number_words

    shown = PlainTextFormatter()
    assert [shown(number_words(n)) for n in (0, 4, 5, 10, 11, 1200)] == [
        "zero",
        "four",
        "five",
        "ten",
        "11",
        "1,200",
    ]
