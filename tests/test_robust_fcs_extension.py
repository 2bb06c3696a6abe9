"""A folder of FCS files counts its ``.FCS`` files too (instruments write the extension in either case): the
ad-hoc run, a manifest built from a folder, `cytokit learn` and the gate editor's cohort skipped them without a
word before (a folder holding only ``.FCS`` files was 'no files match'; a mixed one lost them silently)."""
from __future__ import annotations

import shutil
from pathlib import Path

from cytokit.io_utils import fcs_paths, matching_files
from cytokit.pipeline.config import adhoc_pipeline
from cytokit.pipeline.manifest import build_manifest

FCS = Path(__file__).resolve().parents[1] / "sample_data" / "fcs"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "fcs"
    folder.mkdir()
    shutil.copy(FCS / "P001_W0_tmem.fcs", folder / "P001_W0_tmem.fcs")
    shutil.copy(FCS / "P002_W0_tmem.fcs", folder / "P002_W0_tmem.FCS")
    shutil.copy(FCS / "P003_W0_tmem.fcs", folder / "P003_W0_tmem.Fcs")
    (folder / "notes.txt").write_text("not a sample\n")
    return folder


def test_folder_listing_matches_the_extension_in_any_case(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    names = ["P001_W0_tmem.fcs", "P002_W0_tmem.FCS", "P003_W0_tmem.Fcs"]
    assert [p.name for p in matching_files(folder)] == names
    assert [p.name for p in fcs_paths([folder, folder / "notes.txt"])] == [*names, "notes.txt"]
    assert [p.name for p in matching_files(folder, "P00[12]*.fcs")] == names[:2]


def test_adhoc_manifest_has_every_fcs_file_of_the_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    table, problems = build_manifest(adhoc_pipeline(folder, "il2_trial", "tmem"))
    assert problems == []
    assert sorted(table["sample_id"]) == ["P001_W0_tmem", "P002_W0_tmem", "P003_W0_tmem"]
    assert sorted(Path(p).name for p in table["path"]) == ["P001_W0_tmem.fcs", "P002_W0_tmem.FCS",
                                                            "P003_W0_tmem.Fcs"]
