"""Releasing startup-only memory: which mappings qualify, and, on Linux, that it really lowers the
resident set of a process without changing a byte it can read or losing a byte it wrote."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from backend.memory_release import MADV_DONTNEED, Mapping, parse_smaps, release, resident_kib

SMAPS = """\
55d0c0000000-55d0c0111000 r--p 00000000 08:01 123 /opt/app/peft_engine
Size:               1092 kB
Rss:                1088 kB
Anonymous:             0 kB
Locked:                0 kB
VmFlags: rd mr mw me dw sd
55d0c0111000-55d0c1479000 r-xp 00111000 08:01 123 /opt/app/peft_engine
Size:              19872 kB
Rss:               18240 kB
Anonymous:             0 kB
Locked:                0 kB
55d0c23cf000-55d0c23fe000 r--p 023cf000 08:01 123 /opt/app/peft_engine
Rss:                 108 kB
Anonymous:           108 kB
55d0c23fe000-55d0c2556000 rw-p 023fe000 08:01 123 /opt/app/peft_engine
Rss:                1376 kB
Anonymous:           640 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
Rss:                 132 kB
Anonymous:           132 kB
7f0000100000-7f0000200000 r--p 00000000 08:01 9 /opt/app/lib/data file (deleted)
Rss:                   8 kB
Anonymous:             0 kB
7f0000300000-7f0000301000 r--s 00000000 08:01 10 /var/cache/shared.db
Rss:                   4 kB
Anonymous:             0 kB
7f0000400000-7f0000401000 r--p 00000000 00:05 11 /dev/zero
Rss:                   4 kB
Anonymous:             0 kB
7f0000500000-7f0000501000 r--p 00000000 08:01 12 /opt/app/locked.so
Rss:                   4 kB
Anonymous:             0 kB
Locked:                4 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
"""


def test_parse_smaps_reads_every_mapping_and_its_fields() -> None:
    mappings = list(parse_smaps(SMAPS))
    assert len(mappings) == 10
    first = mappings[0]
    assert (first.start, first.end, first.perms, first.path) == (0x55D0C0000000, 0x55D0C0111000, "r--p",
                                                                 "/opt/app/peft_engine")
    assert (first.rss_kib, first.anonymous_kib, first.locked_kib) == (1088, 0, 0)
    assert mappings[5].path == "/opt/app/lib/data file (deleted)"
    assert mappings[9].path == "[vdso]"
    assert resident_kib(parse_smaps(SMAPS)) == 1088 + 18240 + 108 + 1376 + 132 + 8 + 4 + 4 + 4 + 4


@pytest.mark.parametrize(
    ("index", "releasable", "why"),
    [
        (0, True, "read-only headers of the binary"),
        (1, True, "code"),
        (2, False, "RELRO: relocated, so its pages are private copies"),
        (3, False, "writable data"),
        (4, False, "anonymous memory"),
        (5, True, "a deleted file stays reachable through the mapping"),
        (6, False, "shared mapping"),
        (7, False, "a device"),
        (8, False, "locked pages"),
        (9, False, "not a file"),
    ],
)
def test_only_clean_private_read_only_file_mappings_are_releasable(index: int, releasable: bool, why: str) -> None:
    assert list(parse_smaps(SMAPS))[index].releasable is releasable, why


def test_release_advises_each_releasable_mapping_once_and_counts_what_succeeded() -> None:
    calls = []

    def madvise(start: int, length: int, advice: int) -> int:
        calls.append((start, length, advice))
        return -1 if start == 0x7F0000100000 else 0  # one refused (e.g. EINVAL): not counted

    count, kib = release(parse_smaps(SMAPS), madvise)
    assert [call[0] for call in calls] == [0x55D0C0000000, 0x55D0C0111000, 0x7F0000100000]
    assert {call[2] for call in calls} == {MADV_DONTNEED}
    assert calls[1][1] == 0x55D0C1479000 - 0x55D0C0111000
    assert (count, kib) == (2, 1088 + 18240)


def test_a_mapping_with_a_trailing_space_in_its_path_keeps_it() -> None:
    (mapping,) = parse_smaps("00400000-00401000 r--p 00000000 08:01 1 /a b\nRss: 4 kB\n")
    assert mapping == Mapping(0x400000, 0x401000, "r--p", "/a b", 4, 0, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/smaps are Linux")
def test_release_lowers_the_resident_set_and_keeps_every_byte(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 4096 * 8)  # 8 MiB
    script = textwrap.dedent(
        f"""
        import hashlib, mmap, json
        from pathlib import Path
        from backend.memory_release import release_startup_memory, parse_smaps

        def rss(path):
            return {{m.perms: m.rss_kib for m in parse_smaps(Path("/proc/self/smaps").read_text()) if m.path == path}}

        path = {str(data)!r}
        with open(path, "rb") as f:
            clean = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)  # r--p
            written = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE)         # rw-p, then written
        expected = hashlib.sha256(clean[:]).hexdigest()
        assert hashlib.sha256(written[:]).hexdigest() == expected   # all resident
        written[:4096] = b"x" * 4096
        before = rss(path)
        result = release_startup_memory()
        after = rss(path)
        print(json.dumps({{
            "before": before, "after": after, "released": result.file_kib,
            "same": hashlib.sha256(clean[:]).hexdigest() == expected,
            "written_kept": written[:4096] == b"x" * 4096,
        }}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    result = __import__("json").loads(out.stdout)
    before, after = result["before"], result["after"]
    assert before["r--p"] >= 8 * 1024 - 64  # the clean mapping was resident...
    assert after["r--p"] <= 64  # ...and is released
    assert after["rw-p"] == before["rw-p"] > 0  # the written one is left alone
    assert result["released"] >= before["r--p"]
    assert result["same"] and result["written_kept"]


def test_switch_env_is_the_settings_variable(monkeypatch):
    """The benchmarks turn the release off through ``SWITCH_ENV``; it must be the setting's variable."""
    from backend.memory_release import SWITCH_ENV
    from backend.settings import Settings

    monkeypatch.setenv(SWITCH_ENV, "0")
    assert Settings().release_startup_memory is False
    monkeypatch.setenv(SWITCH_ENV, "1")
    assert Settings().release_startup_memory is True
