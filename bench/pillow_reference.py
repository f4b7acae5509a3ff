#!/usr/bin/env python3
"""The image stage's reference: the same work done by Pillow (issue 10's benchmark).

For each input file: open, `draft('RGB', (648, 648))` for a JPEG (DCT-domain downscale while
decoding), `ImageOps.exif_transpose`, `ImageOps.fit(..., (648, 648), LANCZOS)`, save as JPEG
quality 85. Prints one JSON object: per file, the median CPU ms per image over `--iterations`
(process CPU time, one thread), the output size and Pillow's version.

    python3 bench/pillow_reference.py --iterations 20 a.jpg b.png
Needs `pip install pillow` (the bench reports null figures when it is missing).
"""

import argparse
import io
import json
import statistics
import sys
import time


def work(data):
    from PIL import Image, ImageOps

    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        im.draft("RGB", (648, 648))
    im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    im = ImageOps.fit(im, (648, 648), Image.LANCZOS)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    try:
        import PIL
    except ImportError:
        print(json.dumps({"error": "Pillow is not installed (pip install pillow)"}))
        return 3
    result = {"pillow": PIL.__version__, "python": sys.version.split()[0], "files": {}}
    for path in a.files:
        with open(path, "rb") as f:
            data = f.read()
        work(data)  # warm-up
        times = []
        out = b""
        for _ in range(max(1, a.iterations)):
            t0 = time.process_time_ns()
            out = work(data)
            times.append((time.process_time_ns() - t0) / 1e6)
        result["files"][path] = {
            "cpu_ms_median": statistics.median(times),
            "cpu_ms_min": min(times),
            "iterations": len(times),
            "output_bytes": len(out),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
