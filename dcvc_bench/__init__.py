"""dcvc-bench: a workbench for training and evaluating DCVC learned video codecs.

Control plane (cli, curriculum, runner, events, tui) never imports torch at module level;
compute plane (train, models, data, codec, eval) never imports Textual.
"""

__version__ = "0.1.0"
