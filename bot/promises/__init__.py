"""Promises in the papers: sentences that undertake to give information later (`detect.py`), and
how well they are found against hand-labelled sentences (`evaluate.py`)."""
