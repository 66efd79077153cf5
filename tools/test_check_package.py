"""Tests of tools/check_package.py: the zip's bootstrap against provided.al2023 (architecture,
glibc). Run from the repository root: python3 -m unittest tools/test_check_package.py"""

from __future__ import annotations

import struct
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_package as pkg  # noqa: E402


def elf(machine: int, *versions: str) -> bytes:
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + struct.pack("<H", machine)
    strings = b"".join(b"GLIBC_" + v.encode() + b"\x00" for v in versions)
    return header + b"\x00" * 44 + b"\x00libc.so.6\x00" + strings


class Package(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.zip = Path(self.tmp.name) / "bootstrap.zip"

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def write(self, binary: bytes, name: str = "bootstrap", mode: int = 0o755) -> None:
        with zipfile.ZipFile(self.zip, "w") as z:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, binary)

    def test_a_binary_for_the_runtime_passes(self) -> None:
        self.write(elf(62, "2.2.5", "2.17", "2.34"))
        problems, summary = pkg.check(self.zip, "x86_64", "2.34")
        self.assertEqual(problems, [])
        self.assertIn("highest glibc symbol version 2.34 <= 2.34", summary)

    def test_a_newer_glibc_than_the_runtime_is_refused(self) -> None:
        self.write(elf(62, "2.34", "2.36"))
        problems, _ = pkg.check(self.zip, "x86_64", "2.34")
        self.assertTrue(any("needs GLIBC_2.36, newer than provided.al2023's 2.34" in p for p in problems), problems)

    def test_versions_compare_as_numbers(self) -> None:
        self.assertEqual(pkg.glibc_versions(elf(62, "2.9", "2.17", "2.3.4")), ["2.3.4", "2.9", "2.17"])

    def test_the_other_architecture_is_refused(self) -> None:
        self.write(elf(183, "2.17"))
        problems, _ = pkg.check(self.zip, "x86_64", "2.34")
        self.assertTrue(any("built for arm64, not x86_64" in p for p in problems), problems)
        self.assertEqual(pkg.check(self.zip, "arm64", "2.34")[0], [])

    def test_an_architecture_the_template_does_not_allow(self) -> None:
        self.write(elf(62))
        problems, _ = pkg.check(self.zip, "amd64", "2.34")
        self.assertTrue(any("Architecture allows x86_64, arm64" in p for p in problems), problems)

    def test_the_template_architectures_are_read(self) -> None:
        self.assertEqual(pkg.template_architectures(), ["x86_64", "arm64"])

    def test_no_bootstrap_not_elf_not_executable(self) -> None:
        self.write(elf(62), name="main")
        self.assertIn("no file named bootstrap", pkg.check(self.zip, "x86_64", "2.34")[0][0])
        self.write(b"#!/bin/sh\n")
        self.assertIn("not an ELF executable", " ".join(pkg.check(self.zip, "x86_64", "2.34")[0]))
        self.write(elf(62), mode=0o644)
        self.assertIn("not executable", " ".join(pkg.check(self.zip, "x86_64", "2.34")[0]))


if __name__ == "__main__":
    unittest.main()
