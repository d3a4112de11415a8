"""What `plan` and `run` check about I-frame training and RVQ depths before anything
launches, reading the files the schema cannot: the VQ config JSON and the clips'
headers. Pure Python.

Errors (:func:`iframe_problems`; `plan` and `run` exit 2 on the first, one line naming the key):

- ``[iframe_training].config`` unreadable, or of another family than ``type``;
- ``depths`` deeper than the config's ``num_quantizers`` (a progressive schedule that does
  not fit the codec), and an RVQ depth of the P-frame steps (``[i_frame].layers``,
  ``tracks[i].i_frame_layers``) deeper than it;
- an I-frame crop larger than the training clips (``train_dir``'s, by their MP4 headers;
  synthetic clips are checked by the schema).

Warnings (:func:`iframe_warnings`; printed, nothing refused):

- ``disc_start`` at or beyond a VQ step's iterations (``epochs x steps_per_epoch``, known
  only when ``steps_per_epoch`` is set): the discriminator would never start;
- no LPIPS weights (``lpips_weights`` absent or missing): the perceptual term is off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from dcvc_bench.clips import clip_size, list_videos
from dcvc_bench.curriculum.iframe_spec import RVQSpec
from dcvc_bench.curriculum.iframe_training import (
    TRAINED, CompressAITraining, RVQTraining, VQConfigInfo, read_vq_config,
)
from dcvc_bench.curriculum.schema import Curriculum
from dcvc_bench.errors import UserError


def iframe_problems(cur: Curriculum) -> list[str]:
    """One line per problem, each starting with the curriculum file and the key."""
    problems: list[str] = []
    training = cur.iframe_training
    info: Optional[VQConfigInfo] = None
    if training is not None and not isinstance(training, CompressAITraining):
        try:
            info = read_vq_config(training.config, "iframe_training.config")
        except UserError as exc:
            problems.append(f"{cur.source}: {exc}")
        if info is not None and info.family != training.type:
            problems.append(f"{cur.source}: iframe_training.config: {info.path} is a {info.family!r} config; "
                            f"type {training.type!r} needs one of family {training.type!r}")
            info = None
        if info is not None and isinstance(training, RVQTraining) and training.depths \
                and training.depths[-1] > info.num_quantizers:
            problems.append(f"{cur.source}: iframe_training.depths: {training.depths} do not fit the codec's "
                            f"{info.num_quantizers} layers (num_quantizers in {info.path}); the deepest must be "
                            f"<= {info.num_quantizers}")
    elif training is None and isinstance(cur.i_frame, RVQSpec) and cur.i_frame.config != TRAINED:
        try:  # a codec trained elsewhere: its config bounds the depth (a missing file is preflight's)
            info = read_vq_config(cur.i_frame.config, "i_frame.config")
        except UserError:
            info = None
    if info is not None and isinstance(cur.i_frame, RVQSpec):
        wanted = [("i_frame.layers", getattr(cur.i_frame, "layers", None))]
        wanted += [(f"tracks[{i}].i_frame_layers", t.i_frame_layers) for i, t in enumerate(cur.tracks)]
        for key, layers in wanted:
            if layers is not None and layers > info.num_quantizers:
                problems.append(f"{cur.source}: {key}: {layers} is more than the codec's {info.num_quantizers} "
                                f"layers (num_quantizers in {info.path})")
    if training is not None and cur.data.synthetic is None and cur.data.train_dir is not None:
        problems += _crop_problems(cur, training)
    return problems


def check_iframe_inputs(cur: Curriculum) -> None:
    """Raise :class:`UserError` with the first problem (and how many more there are)."""
    problems = iframe_problems(cur)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)


def _crop_problems(cur: Curriculum, training: Any) -> list[str]:
    crop = training.option("crop_size", cur.train)
    key = "iframe_training.crop_size" if training.crop_size is not None else "train.crop_size (the I-frame steps')"
    try:
        clips = list_videos(str(cur.data.train_dir))
    except UserError:
        return []  # preflight names the folder
    small = [(clip, size) for clip in clips if (size := clip_size(clip)) is not None and min(size) < crop]
    if not small:
        return []
    clip, (width, height) = small[0]
    more = f" and {len(small) - 1} more clip(s)" if len(small) > 1 else ""
    return [f"{cur.source}: {key}: {crop} is larger than the frames of {clip} ({width}x{height}){more}; the "
            f"I-frame steps crop {crop}x{crop} from each frame: use a crop_size <= {min(width, height)} in "
            "[iframe_training]"]


def iframe_warnings(cur: Curriculum) -> list[str]:
    """Lines to print (each starting with the curriculum file and the key); none is an error."""
    training = cur.iframe_training
    if training is None or isinstance(training, CompressAITraining):
        return []
    lines = []
    per_epoch = training.option("steps_per_epoch", cur.train)
    if training.disc_start is not None and per_epoch is not None:
        never = [f"iframe-{phase.tag} ({epochs} epochs x {per_epoch} = {epochs * per_epoch})"
                 for phase, epochs in zip(training.phases(), training.epochs_per_step())
                 if training.disc_start >= epochs * per_epoch]
        if never:
            lines.append(f"{cur.source}: iframe_training.disc_start: {training.disc_start} is at or beyond the "
                         f"iterations of {', '.join(never)}: the discriminator never starts there (its GAN loss "
                         "stays off); lower disc_start or train longer")
    weights = training.lpips_weights
    if training.perceptual_weight > 0 and (weights is None or not Path(weights).is_file()):
        why = "is not set" if weights is None else f"file {weights} does not exist"
        lines.append(f"{cur.source}: iframe_training.lpips_weights {why}: the perceptual (LPIPS) term is off "
                     "in the I-frame steps (they record it as off); put the LPIPS weights file there to use it")
    return lines
