"""``slimpose infer``: poses from photos, folders, videos and cameras (torch-free).

Photos give ``DIR/results.json`` as a COCO keypoint results list (scored by
``slimpose eval --ann ANN --results DIR/results.json``); videos and cameras one record
per frame with track ids. Drawn pictures / a drawn video go beside it, and
``DIR/infer_run.json`` lists them and says whether the run finished (see
:mod:`slimpose.inference.outputs` for what the folder guarantees).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from slimpose.cli_support import check_folder_out, parse_hxw, plural
from slimpose.codecs import DECODE_METHODS
from slimpose.errors import DataError, SlimposeError
from slimpose.inference.outputs import OutputFolder, check_out_folder, drawing_name
from slimpose.signals import StopSignals

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt")


def add_infer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="an ONNX file from 'slimpose export', or a shipped weight name")
    p.add_argument("source", metavar="SOURCE", help="an image, a folder of images, a video file, or a camera index")
    p.add_argument("--detector", metavar="FILE|whole|boxes:FILE.json", default="whole",
                   help="person boxes: a detector ONNX file (YOLOX, NanoDet, YOLOv8/YOLO11), 'whole' (the whole "
                        "image, refined by the pose; default), or 'boxes:FILE.json' (COCO detection results, or "
                        "a COCO annotation file's ground-truth boxes)")
    p.add_argument("--out", metavar="DIR", default="slimpose_infer",
                   help="where results.json, infer_run.json and the drawings go (default: ./slimpose_infer); not "
                        "inside a source folder. A photo's drawing is named after its whole file name (a.jpg -> "
                        "a.jpg_pose.jpg, a.png -> a.png_pose.jpg), a video's NAME_pose.mp4. results.json is "
                        "rewritten whole as the run goes: after Ctrl-C or SIGTERM it holds every image done, after a "
                        "kill those done by its last rewrite (every few seconds); infer_run.json lists the run's "
                        "files and says 'running' until the run has ended")
    p.add_argument("--overwrite", action="store_true",
                   help="use an --out that holds an earlier run's outputs: the files that run listed in its "
                        "infer_run.json are removed first (without it such a folder is refused)")
    p.add_argument("--flip", action="store_true", help="flip test (average with the mirrored crop)")
    p.add_argument("--det-every", type=int, default=1, metavar="N",
                   help="video: run the detector every N frames (and when a person is lost); between, each "
                        "person's box comes from their keypoints (default 1)")
    p.add_argument("--smooth", action="store_true", help="video: One-Euro smoothing of the keypoints")
    p.add_argument("--min-cutoff", type=float, default=1.0, help="One-Euro minimum cutoff, Hz (default 1.0)")
    p.add_argument("--beta", type=float, default=5.0,
                   help="One-Euro speed coefficient, per (person height per second) (default 5.0: ~3 px lag for a "
                        "180 px person crossing 120 px/s at 30 fps, frame-to-frame jitter halved)")
    p.add_argument("--show", action="store_true", help="show the drawings in a window (needs a display; q quits)")
    p.add_argument("--no-draw", action="store_true", help="write results.json only")
    p.add_argument("--draw-scores", action="store_true",
                   help="label each drawn box with the person's score ('score 0.87'; default: no label on photos, "
                        "the track id '#3' on videos)")
    p.add_argument("--layout", metavar="NAME", help="refuse a model whose keypoint layout is not NAME (coco, lsp, ...)")
    p.add_argument("--det-score-thr", type=float, default=0.3, help="detector score threshold (default 0.3)")
    p.add_argument("--nms-iou", type=float, default=0.45, help="detector NMS IoU (default 0.45)")
    p.add_argument("--person-class", type=int, default=0, help="the detector's person class index (COCO-80: 0)")
    p.add_argument("--det-input", type=parse_hxw, metavar="HxW", help="detector input size when its file has none")
    p.add_argument("--max-frames", type=int, metavar="N", help="video/camera: stop after N frames")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per model")
    p.add_argument("--decode", choices=DECODE_METHODS, help="override the file's heatmap decoding")
    p.add_argument("--thr", type=float, default=0.3, help="keypoint score threshold for drawing and tracking")
    p.epilog = ("Exit status: 0 when every input was read; 1 when some images of a folder could not be read (each "
                "is skipped, and all are named at the end) or a video cannot be decoded up to the frame count its "
                "file declares (the frames read are kept); 2 for bad input or options (one line naming the file "
                "or option); 130 / 143 after Ctrl-C / SIGTERM, which stop the run after the current image or frame "
                "with its results written (a second one stops at once).")


def box_label(person, with_id: bool, with_score: bool) -> str | None:
    """The text drawn above a person's box: the track id on videos (``#3``), the
    person's score only with --draw-scores and named (``score 0.87``: a bare number on a
    picture says nothing), or no text."""
    parts = ([f"#{person.track_id}"] if with_id else []) + ([f"score {person.score:.2f}"] if with_score else [])
    return " ".join(parts) or None


# --------------------------------------------------------------------------- inputs


def _model_name_near(checkpoint: Path) -> str:
    """The model name in the run's config.yaml beside a checkpoint, else a placeholder."""
    config = checkpoint.parent / "config.yaml"
    try:
        import yaml

        return str(yaml.safe_load(config.read_text())["model"]["name"])
    except Exception:  # no run folder, or not a slimpose config: the user fills the name in
        return "MODEL_NAME"


def resolve_model(model: str) -> Path:
    """MODEL → an ONNX file: a path, or a shipped weight name. A checkpoint is refused
    with the export command that makes the ONNX file."""
    path = Path(model)
    if path.suffix.lower() in CHECKPOINT_EXTENSIONS:
        onnx = path.with_suffix(".onnx")
        raise SlimposeError(f"{path}: a PyTorch checkpoint; infer runs exported ONNX models. Export it first: "
                            f"slimpose export {_model_name_near(path)} --checkpoint {path} --out {onnx}")
    from slimpose.weights import resolve_model_file

    return resolve_model_file(model)


def _check_layout(estimator, wanted: str | None) -> None:
    if wanted is None:
        return
    from slimpose.keypoints import get_layout

    try:
        layout = get_layout(wanted)
    except KeyError as e:
        raise SlimposeError(f"--layout: {e.args[0]}") from None
    have = estimator.layout
    if have.name != layout.name or have.num_keypoints != layout.num_keypoints:
        raise SlimposeError(f"{estimator.path}: the model predicts the {have.name!r} layout ({have.num_keypoints} "
                            f"keypoints), not {layout.name!r} ({layout.num_keypoints}) as --layout asks")


def source_kind(source: str) -> str:
    """'camera', 'folder', 'video' or 'image'; a missing or unknown file is an error."""
    if source.isdigit():
        return "camera"
    path = Path(source)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise DataError(source, "SOURCE", "no such file or folder (give an image, a folder, a video or a camera index)")
    from slimpose.deploy.runtime import IMAGE_EXTENSIONS

    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    raise DataError(source, "SOURCE", f"not an image ({', '.join(IMAGE_EXTENSIONS)}) or a video "
                                      f"({', '.join(VIDEO_EXTENSIONS)})")


def coco_image_id(path: Path):
    """The number in a COCO file name (000000000139.jpg → 139), else the file name."""
    return int(path.stem) if path.stem.isdigit() else path.name


def open_capture(source: str, kind: str) -> cv2.VideoCapture:
    # OpenCV and its FFmpeg backend print their own warnings for a camera or file they
    # cannot open; our error says it once.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        cap = cv2.VideoCapture(int(source)) if kind == "camera" else cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        what = f"camera {source} cannot be opened" if kind == "camera" else "cannot be opened as a video"
        raise DataError(source if kind == "video" else f"camera {source}", "SOURCE", what)
    return cap


def _has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _round(values, digits: int = 2) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


# --------------------------------------------------------------------------- the run


class InferRun:
    """One ``slimpose infer`` run: the tracker, the output folder, drawing and timing."""

    def __init__(self, args: argparse.Namespace):
        from slimpose.deploy.runtime import OnnxPoseEstimator
        from slimpose.inference.detectors import build_detector
        from slimpose.inference.pipeline import PoseTracker

        if args.det_every < 1:
            raise SlimposeError(f"--det-every must be >= 1, got {args.det_every}")
        self.args = args
        self.kind = source_kind(args.source)
        self.folder = OutputFolder(Path(args.out), args.overwrite)
        check_out_folder(self.folder.path, Path(args.source) if self.kind == "folder" else None)
        self.model_path = resolve_model(args.model)
        estimator = OnnxPoseEstimator(self.model_path, threads=args.threads, decode=args.decode)
        _check_layout(estimator, args.layout)
        detector = build_detector(args.detector, score_thr=args.det_score_thr, nms_iou=args.nms_iou,
                                  person_class=args.person_class, threads=args.threads, input_size=args.det_input)
        self.tracker = PoseTracker(estimator, detector, flip=args.flip, det_every=args.det_every, smooth=args.smooth,
                                   min_cutoff=args.min_cutoff, beta=args.beta, kpt_thr=args.thr)
        self.draw = not args.no_draw or args.show
        self.show = args.show and _has_display()
        if args.show and not self.show:
            print("slimpose infer: no display here; --show ignored", file=sys.stderr)
        self.stop = StopSignals()
        self.results: list | dict | None = None  # what results.json holds, once the run has started
        self.total: int | None = None  # images in the source, or frames the video declares
        self.unreadable: list[str] = []  # "name (problem)" of each image skipped
        self.undecoded: str | None = None  # why a video ended before its declared frame count
        self.frames = self.people = 0
        self.drawing_s = 0.0
        self.quit = False

    @property
    def stopping(self) -> bool:
        return self.quit or self.stop.received is not None

    def drawn(self, image: np.ndarray, people, with_ids: bool) -> np.ndarray:
        from slimpose.drawing import draw_box, draw_pose

        t = time.perf_counter()
        canvas = image.copy()
        for p in people:
            draw_box(canvas, p.box_xywh, label=box_label(p, with_ids, self.args.draw_scores))
            canvas = draw_pose(canvas, p.keypoints, p.keypoint_scores, self.tracker.pose.layout, thr=self.args.thr,
                               copy=False)
        if self.show:
            cv2.imshow("slimpose", canvas)
            self.quit = (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
        self.drawing_s += time.perf_counter() - t
        return canvas

    # ------------------------------------------------------------------ photos
    def photo_paths(self) -> list[Path]:
        from slimpose.data.base import read_image
        from slimpose.deploy.runtime import list_images

        if self.kind == "folder":
            return list_images(self.args.source)
        # One unreadable image given alone is bad input, refused before --out is touched.
        read_image(self.args.source)
        return [Path(self.args.source)]

    def photos(self) -> None:
        from tqdm import tqdm

        from slimpose.data.base import read_image

        paths = self.photo_paths()
        self.total, self.results = len(paths), []
        self.folder.claim(self.args.source, self.model_path,
                          [] if self.args.no_draw else [drawing_name(p) for p in paths])
        for path in tqdm(paths, desc="images", unit="img", disable=None if len(paths) > 1 else True):
            try:
                image = read_image(path)
            except DataError as e:  # one bad file in a folder: skipped, named at the end
                self.unreadable.append(f"{path.name} ({e.problem})")
                tqdm.write(f"{path.name}: skipped: {e.problem}")
                continue
            people = self.tracker.estimate(image, image_id=path)
            image_id = coco_image_id(path)
            self.results += [{"image_id": image_id, "category_id": 1, "bbox": _round(p.box_xywh),
                              "score": round(p.score, 5),
                              "keypoints": _round(np.concatenate([p.keypoints, p.keypoint_scores[:, None]], 1)
                                                  .reshape(-1), 3)} for p in people]
            self.frames += 1
            self.people += len(people)
            line = f"{path.name}: {plural(len(people), 'person', 'people')}"
            if people:
                line += f", best score {max(p.score for p in people):.2f}"
            if self.draw:
                canvas = self.drawn(image, people, with_ids=False)
                if not self.args.no_draw:
                    line += f" -> {self.folder.write_drawing(drawing_name(path), canvas)}"
            tqdm.write(line)
            self.folder.save_results(self.results)
            if self.stopping:
                break

    # ------------------------------------------------------------------ video and camera
    def video(self) -> None:
        from tqdm import tqdm

        cap = open_capture(self.args.source, self.kind)
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.kind == "video" else 0
        limit = self.args.max_frames
        total = min(declared, limit) if limit and declared > 0 else (declared or limit)
        self.total = total or None
        name = Path(self.args.source).stem if self.kind == "video" else f"camera{self.args.source}"
        layout = self.tracker.pose.layout
        record = {"source": self.args.source, "fps": fps, "layout": layout.name, "keypoint_names": list(layout.names),
                  "frames": []}
        self.results = record
        self.folder.claim(self.args.source, self.model_path, [] if self.args.no_draw else [f"{name}_pose.mp4"])
        writer = None
        bar = tqdm(total=total or None, desc=name, unit="frame", disable=None)
        try:
            while not self.stopping and (not limit or self.frames < limit):
                ok, frame = cap.read()
                if not ok:
                    if self.kind == "video" and self.frames < total:
                        self.undecoded = (f"{self.args.source}: SOURCE: only {self.frames} of the "
                                          f"{plural(declared, 'frame')} "
                                          f"the file declares could be decoded (a damaged or cut-short video); "
                                          f"{self.folder.results_path} holds those {self.frames}, numbered in the "
                                          f"order read")
                    break
                people = self.tracker(frame, timestamp=self.frames / fps)
                record["frames"].append({
                    "frame": self.frames, "time": round(self.frames / fps, 4),
                    "track_ids": [int(p.track_id) for p in people],
                    "boxes": [_round(p.box_xywh) for p in people],
                    "scores": [round(p.score, 4) for p in people],
                    "keypoints": [_round(p.keypoints) for p in people],
                    "keypoint_scores": [_round(p.keypoint_scores, 3) for p in people]})
                self.frames += 1
                self.people += len(people)
                if self.draw:
                    canvas = self.drawn(frame, people, with_ids=True)
                    if not self.args.no_draw:
                        writer = writer or self._writer(name, fps, frame.shape)
                        writer.write(canvas)
                self.folder.save_results(record)
                bar.update()
        finally:
            bar.close()
            cap.release()
            if writer is not None:
                writer.release()
        if self.frames == 0:
            raise DataError(self.args.source, "SOURCE", "no frame could be read from the video")
        if writer is not None:
            print(f"wrote {self.folder.path / (name + '_pose.mp4')}")

    def _writer(self, name: str, fps: float, shape) -> cv2.VideoWriter:
        target = self.folder.path / f"{name}_pose.mp4"
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
        if not writer.isOpened():
            raise DataError(str(target), "--out", "OpenCV cannot write an mp4v video here")
        return writer

    def summary(self, seconds: float) -> str:
        n = max(self.frames, 1)
        t = self.tracker.timings
        fps = self.frames / seconds if seconds > 0 else 0.0
        return (f"{plural(self.frames, 'frame')}, {plural(self.people, 'person', 'people')}, {fps:.1f} FPS end to "
                f"end; per frame: detector "
                f"{1e3 * t['detector'] / n:.1f} ms ({self.tracker.detector_calls} calls), pose "
                f"{1e3 * t['pose'] / n:.1f} ms, drawing {1e3 * self.drawing_s / n:.1f} ms")

    def outcome(self) -> tuple[int, list[str]]:
        """The exit status, and a line for each reason it is not 0: a stop signal (128 +
        its number, as a shell reports it), skipped images or an undecodable video (1)."""
        lines = []
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} of {plural(self.total, 'image')} could not be read and were skipped: "
                         f"{', '.join(self.unreadable)}")
        if self.undecoded:
            lines.append(self.undecoded)
        if self.stop.received is not None:
            photos = self.kind in ("image", "folder")
            done = f"{self.frames} of {plural(self.total, 'image')}" if photos else plural(self.frames, "frame")
            lines.append(f"stopped by {self.stop.received.name} after {done}; {self.folder.results_path} holds "
                         f"their results")
            return 128 + self.stop.received, lines
        return (1 if lines else 0), lines


def run_infer(args: argparse.Namespace) -> int:
    check_folder_out(args.out, "slimpose_infer")  # results.json, infer_run.json and the drawings
    run = InferRun(args)
    start = time.perf_counter()
    status = "stopped before the end (an error, or a second interrupt)"
    with run.stop:
        try:
            (run.video if run.kind in ("video", "camera") else run.photos)()
            code, lines = run.outcome()
            status = "; ".join(lines) or ("stopped with q in the --show window" if run.quit else "finished")
        except SlimposeError as e:
            status = f"failed: {e}"
            raise
        finally:
            if run.show:
                cv2.destroyAllWindows()
            run.folder.finish(run.results, status)
    print(run.summary(time.perf_counter() - start))
    print(f"wrote {run.folder.results_path}")
    for line in lines:
        print(f"slimpose infer: {line}", file=sys.stderr)
    return code
