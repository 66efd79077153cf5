"""The READMEs' claims about the templates, checked against the templates: parameter tables
(names and defaults), the outputs they list, the parameters their commands pass, and the
parameters they name for the grant template. Run with the lint venv (PyYAML):

  .venv-lint/bin/python -B -m unittest tools/test_readme_claims.py
"""

from __future__ import annotations

import re
import shlex
import sys
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_account_vending import CfnLoader  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "cloudformation" / "vendor-grants.yaml"
DOCS = [
    REPO / "README.md",
    REPO / "cloudformation" / "README.md",
    REPO / "cloudformation" / "examples" / "README.md",
    REPO / "cloudformation" / "examples" / "account-vending" / "README.md",
    REPO / "docs" / "runbooks.md",
]


def template(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 (a SafeLoader subclass)


def default_text(spec: dict) -> str:
    """A parameter's Default as the tables write it."""
    if "Default" not in spec:
        return "(required)"
    value = spec["Default"]
    if value == "":
        return "empty"
    return str(value)


def commands(text: str) -> list[str]:
    """Shell commands in fenced blocks, continuation lines joined."""
    out = []
    for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S):
        out += [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    return out


class ReadmeClaims(unittest.TestCase):
    def setUp(self) -> None:
        self.deploy = template(DEPLOY)

    def test_the_parameter_table_is_the_templates(self) -> None:
        text = (REPO / "cloudformation" / "README.md").read_text(encoding="utf-8")
        section = text[text.index("### Parameters") : text.index("Outputs:")]
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M)
        params = self.deploy["Parameters"]
        self.assertEqual([name for name, _ in rows], list(params), "the table's rows, in order")
        for name, default in rows:
            wanted = default_text(params[name])
            self.assertEqual(
                default.strip().strip("`"), wanted, f"cloudformation/README.md: {name}'s default"
            )

    def test_the_outputs_listed_are_the_templates(self) -> None:
        outputs = set(self.deploy["Outputs"])
        text = (REPO / "cloudformation" / "README.md").read_text(encoding="utf-8")
        sentence = text[text.index("Outputs:") : text.index("No resource has a fixed")]
        listed = set(re.findall(r"`([A-Z]\w+)`", sentence)) - {"ExportName"}
        self.assertEqual(listed, outputs, "cloudformation/README.md, Outputs")
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        sentence = readme[readme.index("the outputs are") : readme.index("1. Build the Lambda zip")]
        self.assertEqual(set(re.findall(r"`([A-Z]\w+)`", sentence)), outputs, "README.md, Deploy")

    def test_commands_pass_only_the_templates_parameters(self) -> None:
        checked = 0
        for doc in DOCS:
            for command in commands(doc.read_text(encoding="utf-8")):
                if "--parameter-overrides" not in command or "--template-file" not in command:
                    continue
                words = shlex.split(command.replace("$", "X"))
                path = REPO / words[words.index("--template-file") + 1]
                self.assertTrue(path.is_file(), f"{doc.name}: {path} is not a file")
                params = template(path).get("Parameters", {})
                start = words.index("--parameter-overrides") + 1
                given = [w.split("=", 1)[0] for w in words[start:] if "=" in w and not w.startswith("-")]
                for name in given:
                    self.assertIn(name, params, f"{doc.name}: {command}")
                missing = [p for p, s in params.items() if "Default" not in s and p not in given]
                self.assertEqual(missing, [], f"{doc.name}: {command} leaves out required parameters")
                checked += 1
        self.assertGreaterEqual(checked, 5, "the commands this test knows about are still there")

    def test_parameters_named_for_the_grant_template_exist(self) -> None:
        grant = template(REPO / "cloudformation" / "examples" / "grant-existing-bucket.yaml")
        params = set(grant["Parameters"])
        text = (REPO / "cloudformation" / "examples" / "README.md").read_text(encoding="utf-8")
        row = next(line for line in text.splitlines() if line.startswith("| `grant-existing-bucket.yaml`"))
        named = set(re.findall(r"`([A-Z]\w+)`", row)) - {"ServiceTimeout"}
        self.assertTrue(named, row)
        self.assertEqual(named - params, set(), "examples/README.md names parameters the template lacks")
        self.assertEqual(params - named, set(), "examples/README.md leaves out parameters")

    def test_named_deploy_parameters_exist(self) -> None:
        # Every `CodeS3...`, `Allowed...`, `Audit...` the documents name is a deploy parameter.
        params = set(self.deploy["Parameters"]) | set(self.deploy["Outputs"])
        for doc in DOCS:
            text = doc.read_text(encoding="utf-8")
            pattern = (
                r"`((?:CodeS3|Audit|AllowedBucket|AllowedKey|AllowedVendors|AllowedPrincipals"
                r"|Log(?:Level|Retention|Kms))\w*)(?:=[^`]*)?`"
            )
            for name in set(re.findall(pattern, text)):
                self.assertIn(name, params, f"{doc.relative_to(REPO)} names {name}")

    def test_the_lock_table_claims(self) -> None:
        table = self.deploy["Resources"]["LockTable"]
        self.assertEqual(table["DeletionPolicy"], "Retain")
        self.assertTrue(table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        self.assertIn("kept when the\nstack is deleted, point-in-time recovery", readme)


if __name__ == "__main__":
    unittest.main()
