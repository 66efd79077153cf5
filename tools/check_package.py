#!/usr/bin/env python3
"""Checks the Lambda zip `make package` built against what Lambda will run it on.

The function runs on provided.al2023 (cloudformation/vendor-grants.yaml: Runtime), whose glibc is
2.34, with the architecture the deploy template's Architecture parameter names (x86_64 or arm64).
A binary linked against a newer glibc than the runtime's fails at start ("version `GLIBC_2.35'
not found"), and one of the other architecture does not start at all; neither shows up before
the first stack event. So this opens the zip and checks its `bootstrap`:

  * it is an ELF executable for the architecture asked for (e_machine), and that architecture is
    one of the template's Architecture AllowedValues;
  * the highest GLIBC_x.y symbol version it needs (the version-needed entries objdump -T and
    readelf -V list; their names are in the dynamic string table) is at most the runtime's.

    check_package.py --zip dist/vendor-grants-lambda-x86_64.zip --arch x86_64 [--glibc 2.34]

Exit 1 with one line per problem; otherwise one summary line. Pure Python (no binutils needed).
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "cloudformation" / "vendor-grants.yaml"
# provided.al2023's glibc (Amazon Linux 2023); the Makefile's LAMBDA_GLIBC.
RUNTIME_GLIBC = "2.34"
# ELF e_machine values (System V ABI): EM_X86_64 and EM_AARCH64.
MACHINES = {"x86_64": 62, "arm64": 183}


def template_architectures() -> list[str]:
    """The Architecture parameter's AllowedValues, read without a YAML parser (the template's
    short-form tags need cfn-lint's, and this tool runs before any venv)."""
    text = TEMPLATE.read_text(encoding="utf-8")
    block = re.search(r"\n  Architecture:\n((?:    .*\n)+)", text)
    values = re.search(r"AllowedValues:\s*\[([^\]]*)\]", block.group(1)) if block else None
    return [v.strip() for v in values.group(1).split(",")] if values else []


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def elf_machine(binary: bytes) -> int | None:
    if binary[:4] != b"\x7fELF" or len(binary) < 20:
        return None
    little = binary[5] == 1
    return struct.unpack("<H" if little else ">H", binary[18:20])[0]


def glibc_versions(binary: bytes) -> list[str]:
    """Every GLIBC_x.y[.z] version name in the binary (the verneed names live in .dynstr)."""
    found = {m.decode() for m in re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)\x00", binary)}
    return sorted(found, key=version_tuple)


def check(zip_path: Path, arch: str, glibc: str) -> tuple[list[str], str]:
    problems: list[str] = []
    allowed = template_architectures()
    if arch not in allowed:
        problems.append(
            f"--arch {arch}: the deploy template's Architecture allows {', '.join(allowed)}"
        )
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = z.namelist()
            if "bootstrap" not in names:
                return [f"{zip_path}: no file named bootstrap (it has {names})"], ""
            info = z.getinfo("bootstrap")
            binary = z.read("bootstrap")
    except (OSError, zipfile.BadZipFile) as e:
        return [f"{zip_path}: cannot read the zip: {e}"], ""
    if not (info.external_attr >> 16) & 0o111:
        problems.append(f"{zip_path}: bootstrap is not executable in the zip (mode bits)")
    machine = elf_machine(binary)
    if machine is None:
        problems.append(f"{zip_path}: bootstrap is not an ELF executable")
    elif machine != MACHINES.get(arch):
        built = next((a for a, m in MACHINES.items() if m == machine), f"e_machine {machine}")
        problems.append(
            f"{zip_path}: bootstrap is built for {built}, not {arch} (Architecture={arch})"
        )
    versions = glibc_versions(binary)
    highest = versions[-1] if versions else None
    if highest and version_tuple(highest) > version_tuple(glibc):
        problems.append(
            f"{zip_path}: bootstrap needs GLIBC_{highest}, newer than provided.al2023's {glibc}: "
            "build with make package (cargo-lambda's zig, target ...-linux-gnu."
            f"{glibc}), not with the host's glibc"
        )
    summary = (
        f"{zip_path}: bootstrap for {arch}, highest glibc symbol version "
        f"{highest or 'none (static)'} <= {glibc}, {len(binary)} bytes"
    )
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zip", required=True, type=Path)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--glibc", default=RUNTIME_GLIBC)
    args = ap.parse_args(argv)
    problems, summary = check(args.zip, args.arch, args.glibc)
    if problems:
        print("\n".join(problems))
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
