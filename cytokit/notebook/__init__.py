"""Gate tuning in Jupyter: a state model of the gate editor (testable without a browser), its figures,
and an ipywidgets view (``pip install 'cytokit[notebook]'``; ipywidgets is imported only by the view).

>>> editor = GateEditor("tmem", "sample.fcs", cohort="fcs/")   # doctest: +SKIP
>>> editor                                                      # doctest: +SKIP
"""
from .figures import cohort_grid, gate_figure, png_bytes, show
from .controls import METHOD_CONTROLS, NO_POPULATION, SHARED_CONTROLS, Control, MethodControls, method_controls
from .state import CohortResult, GateEditorState, cohort_files, flag_outliers


def __getattr__(name: str):  # the widget (and ipywidgets) only when asked for
    if name == "GateEditor":
        from .widget import GateEditor

        return GateEditor
    raise AttributeError(name)


__all__ = ["METHOD_CONTROLS", "NO_POPULATION", "SHARED_CONTROLS", "CohortResult", "Control", "MethodControls",
           "method_controls", "GateEditor", "GateEditorState", "cohort_files", "cohort_grid",
           "flag_outliers", "gate_figure", "png_bytes", "show"]
