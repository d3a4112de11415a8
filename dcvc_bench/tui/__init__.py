"""The Textual workbench, `dcvc-bench tui` (see app.py). Never imports torch."""
