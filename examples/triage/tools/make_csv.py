"""Rewrite scikit-learn's copy of the WDBC data as ``mtenv_triage/data/wdbc.csv``.

Run once, by hand, when the vendored file is to be regenerated (it is not needed at run time)::

    pip download scikit-learn==1.9.1 --no-deps -d /tmp/skl
    unzip -j /tmp/skl/scikit_learn-*.whl sklearn/datasets/data/breast_cancer.csv -d /tmp/skl
    python tools/make_csv.py /tmp/skl/breast_cancer.csv mtenv_triage/data/wdbc.csv

scikit-learn's file starts with a line ``569,30,malignant,benign`` (row count, feature count,
class names) and ends each row with the class index (0 = malignant, 1 = benign). This script
replaces that first line by a header of column names and recodes the class as ``malignant``
(1 = malignant, 0 = benign). The 30 feature values are copied as text, unchanged, in the same
order, row for row.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtenv_triage.data import FEATURES

COLUMNS = [*FEATURES, "malignant"]


def convert(src: Path, dst: Path) -> None:
    lines = src.read_text(encoding="ascii").splitlines()
    if lines[0].strip() != "569,30,malignant,benign":
        raise SystemExit(f"{src}: unexpected first line {lines[0]!r}")
    out = [",".join(COLUMNS)]
    for line in lines[1:]:
        if not line.strip():
            continue
        *features, cls = line.split(",")
        if len(features) != 30 or cls not in ("0", "1"):
            raise SystemExit(f"{src}: bad row {line!r}")
        out.append(",".join([*features, "1" if cls == "0" else "0"]))
    if len(out) != 570:
        raise SystemExit(f"{src}: expected 569 rows, got {len(out) - 1}")
    dst.write_text("\n".join(out) + "\n", encoding="ascii")


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
