"""The curriculum as a tree: tracks → groups (a P-frame stage, or ``I-frame``; ``Step.group``,
from its kind) → steps, each step with its state, epochs done/planned and how it starts (or
started). The I-frame steps (their own track, ``iframe``) come first: they run first."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from dcvc_bench.curriculum.start_words import start_short
from dcvc_bench.tui.format import state_style
from dcvc_bench.tui.views import StepRow


class CurriculumTree(Tree[str]):
    """Every node's data is a step id: its own, or for a stage or track its first step's,
    so highlighting any node shows a step. The steps of a curriculum never change while
    it is open, so nodes are built once and only their labels are updated."""

    def __init__(self, rows: list[StepRow], *, id: str | None = None):
        super().__init__("run", id=id)
        self.show_root = False
        self.guide_depth = 2
        self._steps: dict[str, TreeNode[str]] = {}
        self._groups: dict[tuple[str, str], TreeNode[str]] = {}
        self._tracks: dict[str, TreeNode[str]] = {}
        for row in rows:
            step = row.step
            track = self._tracks.get(step.track)
            if track is None:
                track = self._tracks[step.track] = self.root.add(step.track, data=step.id, expand=True)
            group = self._groups.get((step.track, step.group))
            if group is None:
                group = self._groups[(step.track, step.group)] = track.add(step.group, data=step.id, expand=True)
            self._steps[step.id] = group.add_leaf(step.id, data=step.id)
        self._rows = rows

    def on_mount(self) -> None:
        self.show_rows(self._rows)

    def show_rows(self, rows: list[StepRow]) -> None:
        self._rows = rows
        theme = self.app.theme_variables
        for row in rows:
            self._steps[row.step.id].set_label(_step_label(row, theme))
        for (track, group), node in self._groups.items():
            node.set_label(_group_label(group, [r for r in rows if r.step.track == track
                                                and r.step.group == group], theme))
        for track, node in self._tracks.items():
            mine = [r for r in rows if r.step.track == track]
            first = mine[0].step
            name = f"I-frame codec ({first.i_frame_type})" if first.is_iframe else \
                f"{track} λ{first.lambda_value:g} q{first.quality_index}"
            node.set_label(_group_label(name, mine, theme))

    def select_step(self, step_id: str) -> None:
        """Put the cursor on a step (the screen then shows it)."""
        node = self._steps.get(step_id)
        if node is None:
            return
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        self.move_cursor(node)


def _step_label(row: StepRow, theme: dict[str, str]) -> Text:
    glyph, style = state_style(theme, row.state)
    step = row.step
    name = step.id.removeprefix(f"{step.track}-")
    # The glyph (and its colour) is the state, the last word how the step starts (legend on
    # `?`): both fit the 80-column tree, where a state word such as "will re-run" did not.
    return Text.assemble((f"{glyph} ", style), (f"{name:<8}", "bold" if row.state == "running" else ""),
                         f" {row.epochs_done}/{step.epochs} ",
                         ("skip", style) if row.state == "skipped" else (start_short(row.start), "dim"))


def _group_label(name: str, rows: list[StepRow], theme: dict[str, str]) -> Text:
    done = sum(r.state == "done" for r in rows)
    skipped = sum(r.state == "skipped" for r in rows)
    for state in ("running", "failed", "diverged", "interrupted", "will re-run"):
        if any(r.state == state for r in rows):
            break
    else:
        state = "done" if done and done + skipped == len(rows) else "skipped" if skipped == len(rows) \
            else "pending"
    glyph, style = state_style(theme, state)
    return Text.assemble((f"{glyph} ", style), name, (f"  {done}/{len(rows)}", "dim"),
                         (f" ↷{skipped}" if skipped else "", "dim"))
