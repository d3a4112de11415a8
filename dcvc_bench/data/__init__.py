"""Video data: MP4 GOP datasets (OpenCV) and the synthetic clip generator."""

import os

# OpenCV's FFmpeg backend prints its own multi-line complaints about unreadable files
# ("moov atom not found"); dcvc-bench reports those itself in one line naming the file.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
