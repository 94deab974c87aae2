import pytest

from device.sources.layout import by_subject, sample_path, scan


def test_scan_reads_standard_layout(tmp_path):
    for subj in ("001", "002"):
        for sess in (1, 2):
            for k in (1, 2, 3):
                p = sample_path(tmp_path, subj, sess, k)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"x")
    (tmp_path / "001" / "notes.txt").write_text("ignored")
    (tmp_path / "001" / "thumb.png").write_bytes(b"ignored: not <session>_<sample>")
    refs = scan(tmp_path)
    assert len(refs) == 12
    assert refs[0].subject == "001" and refs[0].session == 1 and refs[0].sample == 1
    assert [len(v) for v in by_subject(refs).values()] == [6, 6]


def test_scan_missing_dir_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        scan(tmp_path / "nope")
