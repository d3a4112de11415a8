"""Test oracle shared by the data tests."""

import cv2
import numpy as np


def decode_all(path) -> np.ndarray:
    """Independent oracle: plain sequential OpenCV decoding, RGB."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)
