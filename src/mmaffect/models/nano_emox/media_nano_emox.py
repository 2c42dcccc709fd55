"""Media decoding for Nano-EmoX: video frames and audio with PyAV, resampling with soxr, face crops with OpenCV.

Only the standard library is imported at module level; numpy, av, soxr, soundfile and cv2 are imported inside the
functions that need them, so the model files stay importable with torch + transformers alone.

Every failure names the file: a missing file raises ``FileNotFoundError``; a file that is not a readable media
container, a clip without frames, an empty audio track raise ``MediaError``; a clip without an audio track raises
``NoAudioTrackError`` (a ``MediaError``), audio with NaN / Inf samples ``MediaError`` - callers that prefer to drop the audio branch catch that one (see
``NanoEmoXProcessor.load_clip(missing_audio="omit")``).
"""

import os
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from typing import Any

DEFAULT_SAMPLING_RATE = 16000  # HuBERT is trained on 16 kHz audio
# soundfile reads these directly (faster than a container demuxer); everything else goes through PyAV.
SOUNDFILE_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
HAAR_CASCADE_FILE = "haarcascade_frontalface_default.xml"


class MediaError(ValueError):
    """A media file that cannot be used; the message names the file."""


class NoAudioTrackError(MediaError):
    """The container has no audio stream."""


@dataclass
class VideoFrames:
    """Uniformly sampled RGB frames of one clip.

    Attributes:
        frames: ``(num_frames, height, width, 3)`` uint8 array.
        indices: index of each sampled frame in the decoded stream.
        timestamps: time of each sampled frame in seconds (None when the stream has no time base).
        num_source_frames: frames decoded from the stream.
        fps: average frame rate reported by the container (0.0 when unknown).
    """

    frames: Any
    indices: list[int]
    timestamps: list[float | None]
    num_source_frames: int
    fps: float


@dataclass
class FaceTrack:
    """Face crops aligned with the sampled frames.

    Attributes:
        crops: ``(num_frames, size, size, 3)`` uint8 array (zeros where no face was found).
        found: one bool per frame, True where a face was detected (or the frame is used whole).
        boxes: the ``(x, y, w, h)`` box used for each frame, None where no face was found.
    """

    crops: Any
    found: list[bool]
    boxes: list[tuple[int, int, int, int] | None] = field(default_factory=list)

    @property
    def has_face(self) -> bool:
        return any(self.found)


def _check_file(path: str | os.PathLike, kind: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{kind} file not found: {path}")
    if os.path.isdir(path):
        raise MediaError(f"{kind} path is a directory, not a file: {path}")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{kind} file is empty (0 bytes, zero-length clip): {path}")
    return path


def _open_container(path: str):
    import av

    try:
        return av.open(path)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise MediaError(f"cannot open {path}: not a readable media container ({err})") from err


def uniform_frame_indices(num_source_frames: int, num_frames: int) -> list[int]:
    """Centres of ``num_frames`` equal segments of ``[0, num_source_frames)``; short clips repeat frames."""
    if num_source_frames <= 0:
        raise ValueError(f"num_source_frames must be positive, got {num_source_frames}")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    step = num_source_frames / num_frames
    return [min(num_source_frames - 1, int((i + 0.5) * step)) for i in range(num_frames)]


def read_video_frames(path: str | os.PathLike, num_frames: int = 8) -> VideoFrames:
    """Decode ``num_frames`` uniformly spaced RGB frames from the first video stream of ``path`` with PyAV.

    The frame count comes from the container header when it has one, otherwise from a demux pass (no decoding);
    when the header over-counts, the frames are sampled again over what really decodes. Raises ``MediaError``
    for an unreadable container, a file without a video stream or a clip without decodable frames.
    """
    import av
    import numpy as np

    path = _check_file(path, "video")
    try:
        with _open_container(path) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video track")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else 0.0
            total = int(stream.frames or 0)
            if total <= 0:
                total = sum(1 for packet in container.demux(stream) if packet.size > 0)
        if total <= 0:
            raise MediaError(f"{path}: the video track contains no frames (zero-length clip)")
        indices = uniform_frame_indices(total, num_frames)
        kept, decoded = _decode_selected(path, indices)
        if set(indices) - kept.keys():  # the header promised more frames than the stream holds
            if decoded == 0:
                raise MediaError(f"{path}: the video track contains no decodable frames (zero-length clip)")
            total = decoded
            indices = uniform_frame_indices(total, num_frames)
            kept, _ = _decode_selected(path, indices)
    except av.FFmpegError as err:
        raise MediaError(f"cannot decode the video track of {path} ({err})") from err
    stack = np.stack([kept[i][0] for i in indices])
    timestamps = [kept[i][1] for i in indices]
    return VideoFrames(frames=stack, indices=indices, timestamps=timestamps, num_source_frames=total, fps=fps)


def _decode_selected(path: str, wanted: Sequence[int]):
    """Decode the first video stream in order, keeping the frames at the positions in ``wanted`` and stopping
    after the last one. Returns ``({position: (rgb_array, seconds)}, frames_decoded)``."""
    wanted_set, last = set(wanted), max(wanted)
    kept: dict[int, tuple[Any, float | None]] = {}
    position = -1
    with _open_container(path) as container:
        stream = container.streams.video[0]
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted_set:
                time = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else None
                kept[position] = (frame.to_ndarray(format="rgb24"), time)
            if position >= last:
                break
    return kept, position + 1


def read_audio(
    path: str | os.PathLike,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    max_seconds: float | None = None,
):
    """Mono float32 waveform of the first audio stream of ``path``, resampled to ``sampling_rate`` with soxr.

    WAV/FLAC/OGG/AIFF files are read with soundfile, every other container with PyAV. Raises
    ``NoAudioTrackError`` when the file has no audio stream and ``MediaError`` when it holds no samples.
    """
    import numpy as np
    import soxr

    path = _check_file(path, "audio")
    if path.lower().endswith(SOUNDFILE_SUFFIXES):
        waveform, source_rate = _read_audio_soundfile(path)
    else:
        waveform, source_rate = _read_audio_pyav(path)
    if waveform.size == 0:
        raise MediaError(f"{path}: the audio track contains no samples (zero-length clip)")
    finite = np.isfinite(waveform)
    if not finite.all():  # float WAV/FLAC can store NaN / Inf; one of them makes every audio feature NaN
        bad = np.flatnonzero(~finite)
        raise MediaError(f"{path}: the audio track has {bad.size} non-finite sample(s) (NaN or Inf), first at index {int(bad[0])}")
    if source_rate != sampling_rate:
        waveform = soxr.resample(waveform, source_rate, sampling_rate)
    if max_seconds is not None:
        waveform = waveform[: int(max_seconds * sampling_rate)]
    return np.ascontiguousarray(waveform, dtype=np.float32)


def _read_audio_soundfile(path: str):
    import soundfile

    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise MediaError(f"cannot read audio file {path} ({err})") from err
    return data.mean(axis=1), int(rate)


def _read_audio_pyav(path: str):
    import av
    import numpy as np

    with _open_container(path) as container:
        if not container.streams.audio:
            raise NoAudioTrackError(f"{path} has no audio track")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise MediaError(f"{path}: the audio track reports no sample rate")
        # PyAV only converts sample format and down-mixes here; the rate change is done by soxr.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    chunks.append(converted.to_ndarray().reshape(-1))
            for converted in resampler.resample(None):
                chunks.append(converted.to_ndarray().reshape(-1))
        except av.FFmpegError as err:
            raise MediaError(f"cannot decode the audio track of {path} ({err})") from err
    waveform = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return waveform.astype(np.float32, copy=False), rate


# ----------------------------------------------------------------------------------------------------
# Faces
# ----------------------------------------------------------------------------------------------------
class HaarCascadeFaceDetector:
    """Frontal-face detector from OpenCV's bundled Haar cascade (``cv2.data.haarcascades``).

    Any callable ``detector(frame_rgb_uint8) -> list[(x, y, w, h)]`` can replace it (e.g. a RetinaFace or MTCNN
    wrapper): pass it as ``NanoEmoXProcessor(face_detector=...)`` or set ``processor.face_detector``.
    OpenCV >= 5 no longer ships the Haar cascades; constructing this detector there raises an error that says so.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size_fraction: float = 0.08):
        import cv2

        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no bundled Haar cascades (removed in OpenCV 5): install "
                "'opencv-python-headless<5' or pass a face detector callable (frame -> [(x, y, w, h)])"
            )
        cascade_path = os.path.join(cv2.data.haarcascades, HAAR_CASCADE_FILE)
        if not os.path.exists(cascade_path):
            raise RuntimeError(f"Haar cascade file not found: {cascade_path}")
        self.cascade = cv2.CascadeClassifier(cascade_path)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_fraction = min_size_fraction

    def __call__(self, frame) -> list[tuple[int, int, int, int]]:
        import cv2

        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        side = max(1, int(min(gray.shape[:2]) * self.min_size_fraction))
        boxes = self.cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        return [tuple(int(v) for v in box) for box in boxes]


def square_crop(frame, box: tuple[int, int, int, int], margin: float, size: int):
    """Square crop around ``box`` enlarged by ``margin`` (fraction of the box side), zero-padded at the borders,
    resized to ``size`` x ``size``."""
    import numpy as np
    from PIL import Image

    x, y, w, h = box
    side = int(round(max(w, h) * (1.0 + 2.0 * margin)))
    cx, cy = x + w / 2.0, y + h / 2.0
    left, top = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    height, width = frame.shape[:2]
    src_l, src_t = max(left, 0), max(top, 0)
    src_r, src_b = min(left + side, width), min(top + side, height)
    if src_r > src_l and src_b > src_t:
        canvas[src_t - top : src_b - top, src_l - left : src_r - left] = frame[src_t:src_b, src_l:src_r]
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))


def resize_frame(frame, size: int):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


def track_faces(
    frames,
    detector: Callable[[Any], Sequence[Sequence[int]]] | None,
    size: int = 224,
    margin: float = 0.25,
    full_frame: bool = False,
) -> FaceTrack:
    """Crop the largest detected face of every frame (``full_frame=True``: use each whole frame, as the public
    code does). Frames without a face get a zero crop and ``found=False``."""
    import numpy as np

    crops, found, boxes = [], [], []
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"frame {index} must be an (H, W, 3) RGB array, got shape {tuple(frame.shape)}")
        frame = frame.astype(np.uint8, copy=False)
        if full_frame:
            crops.append(resize_frame(frame, size))
            found.append(True)
            boxes.append((0, 0, frame.shape[1], frame.shape[0]))
            continue
        detections = [tuple(int(v) for v in box) for box in (detector(frame) or [])]
        detections = [box for box in detections if len(box) == 4 and box[2] > 0 and box[3] > 0]
        if not detections:
            crops.append(np.zeros((size, size, 3), dtype=np.uint8))
            found.append(False)
            boxes.append(None)
            continue
        box = max(detections, key=lambda b: b[2] * b[3])
        crops.append(square_crop(frame, box, margin, size))
        found.append(True)
        boxes.append(box)
    return FaceTrack(crops=np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8), found=found, boxes=boxes)


__all__ = [
    "DEFAULT_SAMPLING_RATE",
    "FaceTrack",
    "HaarCascadeFaceDetector",
    "MediaError",
    "NoAudioTrackError",
    "VideoFrames",
    "read_audio",
    "read_video_frames",
    "resize_frame",
    "square_crop",
    "track_faces",
    "uniform_frame_indices",
]
