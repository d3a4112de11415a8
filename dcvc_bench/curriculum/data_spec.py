"""``[data]``: folders of MP4 clips or ``[data.synthetic]`` clips the runner writes. Pure Python."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import model_validator

from dcvc_bench.curriculum.base import CurriculumModel as _Model
from dcvc_bench.curriculum.bounds import MAX_SEED, MAX_SYNTHETIC_PIXELS, ClipCount, ClipFrames, ClipSide, PathText, Seed
from dcvc_bench.curriculum.messages import rule as _rule


class SyntheticData(_Model):
    """Deterministic clips that the runner writes into ``<run_dir>/data/{train,val}`` when
    absent, so a curriculum can run with no dataset at all. ``val_*`` default to the
    training clips' values (``val_seed`` to ``seed + 1``, so validation clips differ)."""

    videos: ClipCount = 4
    frames: ClipFrames = 30
    width: ClipSide = 256
    height: ClipSide = 256
    seed: Seed = 0
    val_videos: ClipCount = 1
    val_frames: ClipFrames
    val_width: ClipSide
    val_height: ClipSide
    val_seed: Seed

    @model_validator(mode="before")
    @classmethod
    def _val_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        out = dict(data)
        for val_key, train_key in (("val_frames", "frames"), ("val_width", "width"), ("val_height", "height")):
            out.setdefault(val_key, out.get(train_key, fields[train_key].default))
        seed = out.get("seed", fields["seed"].default)
        if isinstance(seed, int) and not isinstance(seed, bool):
            out.setdefault("val_seed", (seed + 1) % (MAX_SEED + 1))
        return out

    @model_validator(mode="after")
    def _not_too_many_pixels(self) -> SyntheticData:
        for key, pixels in (("videos", self.videos * self.frames * self.width * self.height),
                            ("val_videos", self.val_videos * self.val_frames * self.val_width * self.val_height)):
            if pixels > MAX_SYNTHETIC_PIXELS:
                what = "training" if key == "videos" else "validation"
                raise _rule(f"the {what} clips would hold {pixels:.2g} pixels (videos x frames x width x "
                            f"height), more than {MAX_SYNTHETIC_PIXELS:.0e}; make them fewer, shorter or "
                            "smaller, or use train_dir/val_dir with real clips", key)
        return self


class DataSpec(_Model):
    """Folders of MP4 clips (``train_dir`` + ``val_dir``) or ``[data.synthetic]``."""

    train_dir: Optional[PathText] = None
    val_dir: Optional[PathText] = None
    synthetic: Optional[SyntheticData] = None
    #: The decoded-frame cache folder (the trainer's ``--frame_cache``): not hashed, it
    #: leaves the samples alone.
    frame_cache: Optional[PathText] = None

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.synthetic is not None:
            for key in ("train_dir", "val_dir"):
                if getattr(self, key) is not None:
                    raise _rule("cannot be combined with [data.synthetic]; use one or the other", key)
        elif self.train_dir is None:
            raise _rule("missing; set train_dir and val_dir (folders of .mp4 clips) or add [data.synthetic]", "train_dir")
        elif self.val_dir is None:
            raise _rule("missing required key (the folder of validation .mp4 clips)", "val_dir")
        return self
