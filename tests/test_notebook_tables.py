"""markdown_table: the pandas-free tables that chapters display."""

import pytest

from resnet_course.notebooks import markdown_table


def test_markdown_table_has_a_header_a_rule_and_one_line_per_row():
    table = markdown_table(["model", "parameters"], [["resnet18", "11.7M"], ["resnet50", "25.6M"]])
    lines = table.data.splitlines()
    assert lines == [
        "| model | parameters |",
        "|---|---|",
        "| resnet18 | 11.7M |",
        "| resnet50 | 25.6M |",
    ]


def test_markdown_table_escapes_pipes_inside_cells():
    table = markdown_table(["a"], [["x|y"]])
    assert table.data.splitlines()[-1] == "| x\\|y |"


def test_markdown_table_refuses_a_row_of_the_wrong_length():
    with pytest.raises(ValueError, match="2 cells but the header has 3"):
        markdown_table(["a", "b", "c"], [[1, 2]])
