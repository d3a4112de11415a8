"""Video data: the clip readers (MP4, raw YUV 4:2:0, PNG/JPEG frames), YUV<->RGB colour,
GOP datasets, format conversion and the synthetic clip generator."""

import os

# OpenCV's FFmpeg backend prints its own multi-line complaints about unreadable files
# ("moov atom not found"); dcvc-bench reports those itself in one line naming the file.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
