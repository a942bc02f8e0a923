"""Hostile check (issue 23 item 6), not part of the suite: truncate each stored per-sample array of a built analysis
in turn and open every dashboard page in AppTest; prints, per (file, page), an exception (a red box) or the
messages shown. Every line should show a message naming the file, or nothing (the page does not read it).

    .venv/bin/python tests/hostile_truncated_arrays.py ANALYSIS_DIR [NAME ...]
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["overview", "confusion", "importance", "review", "decisions", "map", "duplicates", "sample"]
NAMES = ["images_train", "map_xy", "quality_train", "x_train", "neighbors_train", "outlier_train"]


def main(built: Path, names: list[str]) -> None:
    for name in names:
        with tempfile.TemporaryDirectory() as cache:
            copy = Path(shutil.copytree(built, Path(cache) / built.name))
            np.save(copy / f"{name}.npy", np.load(copy / f"{name}.npy")[:-3])
            os.environ["CORECLEAN_CACHE"] = cache
            for page in PAGES:
                at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=300)
                at.run()
                at.switch_page(f"pages/{page}.py").run()
                shown = [e.value[:120] for e in at.error]
                print(name, page, "EXCEPTION" if at.exception else "", shown, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] or NAMES)
