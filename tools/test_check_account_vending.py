"""Tests of tools/check_account_vending.py: the recipes pass, and broken copies of them fail with
the problem named. Run with the lint venv from the repository root:

  .venv-lint/bin/python -m unittest tools/test_check_account_vending.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_account_vending as checker  # noqa: E402

CHECKER = Path(checker.__file__)


class Recipes(unittest.TestCase):
    """Each test writes a changed copy of a recipe to a temporary folder and checks it."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    # -- helpers ---------------------------------------------------------------------------

    def check(self, kind: str, path: Path) -> list[str]:
        problems, _ = checker.run(
            path if kind == "cfct" else None,
            path if kind == "lza" else None,
            path if kind == "aft" else None,
        )
        return problems.lines()

    def cfct(self, change) -> list[str]:
        data = yaml.safe_load(checker.CFCT_MANIFEST.read_text())
        change(data)
        manifest = self.dir / "manifest.yaml"
        manifest.write_text(yaml.safe_dump(data, sort_keys=False))
        return self.check("cfct", manifest)

    def lza(self, change) -> list[str]:
        data = yaml.safe_load(checker.LZA_CONFIG.read_text())
        change(data)
        config = self.dir / "customizations-config.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        return self.check("lza", config)

    def aft(self, old: str, new: str) -> list[str]:
        text = (checker.AFT_TERRAFORM / "main.tf").read_text()
        self.assertIn(old, text, "the test's change no longer applies to main.tf")
        (self.dir / "main.tf").write_text(text.replace(old, new, 1))
        return self.check("aft", self.dir)

    def assertCaught(self, lines: list[str], *fragments: str) -> None:
        for fragment in fragments:
            self.assertTrue(
                any(fragment in line for line in lines),
                f"no problem says {fragment!r}; problems: {lines}",
            )

    @staticmethod
    def cfct_resource(data: dict, name: str) -> dict:
        return next(r for r in data["resources"] if r["name"] == name)

    @staticmethod
    def lza_stack_set(data: dict, name: str) -> dict:
        return next(
            s for s in data["customizations"]["cloudFormationStackSets"] if s["name"] == name
        )

    # -- the recipes as they are ------------------------------------------------------------

    def test_the_recipes_pass(self) -> None:
        problems, summaries = checker.run(
            checker.CFCT_MANIFEST, checker.LZA_CONFIG, checker.AFT_TERRAFORM
        )
        self.assertEqual(problems.lines(), [])
        self.assertEqual([s.deployments for s in summaries], [2, 2, 2])
        self.assertEqual([s.imports for s in summaries], [1, 1, 1])

    def test_the_command_prints_one_line_and_exits_0(self) -> None:
        run = subprocess.run(
            [sys.executable, str(CHECKER)], capture_output=True, text=True, check=False
        )
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual(len(run.stdout.splitlines()), 1, run.stdout)
        self.assertIn("recipes OK", run.stdout)

    def test_the_command_prints_file_path_message_and_exits_1(self) -> None:
        data = yaml.safe_load(checker.CFCT_MANIFEST.read_text())
        data["resources"][0]["deploy_method"] = "stackset"
        manifest = self.dir / "manifest.yaml"
        manifest.write_text(yaml.safe_dump(data, sort_keys=False))
        run = subprocess.run(
            [sys.executable, str(CHECKER), "--cfct", str(manifest)],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(run.returncode, 1)
        self.assertIn(
            f"{manifest}:resources[0].deploy_method: 'stackset' is not one of", run.stdout
        )

    # -- CfCT ------------------------------------------------------------------------------

    def test_cfct_unknown_key(self) -> None:
        # CfCT has no capabilities key: it passes its own.
        lines = self.cfct(lambda d: d["resources"][0].update(capabilities=["CAPABILITY_IAM"]))
        self.assertCaught(lines, "resources[0].capabilities: unknown key 'capabilities'")

    def test_cfct_unknown_top_level_key(self) -> None:
        lines = self.cfct(lambda d: d.update(regions=["us-east-1"]))
        self.assertCaught(lines, "regions: unknown key 'regions' in a CfCT manifest")

    def test_cfct_bad_deploy_method(self) -> None:
        lines = self.cfct(lambda d: d["resources"][1].update(deploy_method="stackset"))
        self.assertCaught(
            lines, "resources[1].deploy_method: 'stackset' is not one of scp, stack_set, rcp"
        )

    def test_cfct_bad_version(self) -> None:
        lines = self.cfct(lambda d: d.update(version="2020-01-01"))
        self.assertCaught(lines, "version: '2020-01-01' is not one of 2021-03-15")

    def test_cfct_missing_required_parameter(self) -> None:
        def drop(d):
            r = self.cfct_resource(d, "VendorGrants")
            r["parameters"] = [p for p in r["parameters"] if p["parameter_key"] != "CodeS3Key"]

        lines = self.cfct(drop)
        self.assertCaught(lines, "Parameter CodeS3Key has no Default and is not given")

    def test_cfct_parameter_not_in_template(self) -> None:
        def add(d):
            self.cfct_resource(d, "TelusGrant")["parameters"].append(
                {"parameter_key": "BucketPrefix", "parameter_value": "x"}
            )

        lines = self.cfct(add)
        self.assertCaught(
            lines,
            "BucketPrefix is not a Parameter of cloudformation/examples/grant-existing-bucket.yaml",
        )

    def test_cfct_parameter_given_twice(self) -> None:
        def twice(d):
            r = self.cfct_resource(d, "TelusGrant")
            r["parameters"].append(dict(r["parameters"][0]))

        self.assertCaught(self.cfct(twice), "parameter Vendor is given twice")

    def test_cfct_missing_template_file(self) -> None:
        lines = self.cfct(
            lambda d: self.cfct_resource(d, "TelusGrant").update(
                resource_file="templates/vendor-grants/examples/telus-grant.yaml"
            )
        )
        self.assertCaught(
            lines, "names cloudformation/examples/telus-grant.yaml, which is not a file"
        )

    def test_cfct_template_outside_the_root(self) -> None:
        lines = self.cfct(
            lambda d: self.cfct_resource(d, "VendorGrants").update(
                resource_file="templates/vendor-grants.yaml"
            )
        )
        self.assertCaught(
            lines, "'templates/vendor-grants.yaml' is not under templates/vendor-grants/"
        )

    def test_cfct_values_break_allowed_values_and_pattern(self) -> None:
        def bad(d):
            for p in self.cfct_resource(d, "VendorGrants")["parameters"]:
                if p["parameter_key"] == "Architecture":
                    p["parameter_value"] = "aarch64"
                if p["parameter_key"] == "CodeS3BucketPrefix":
                    p["parameter_value"] = "My_Bucket"

        lines = self.cfct(bad)
        self.assertCaught(
            lines,
            "Architecture='aarch64': 'aarch64' is not in AllowedValues ['x86_64', 'arm64']",
            "CodeS3BucketPrefix='My_Bucket': 'My_Bucket' does not match AllowedPattern",
        )

    def test_cfct_template_rules_are_evaluated(self) -> None:
        # vendor-grants.yaml's rule OneCodeBucket: neither code bucket parameter, or both.
        def neither(d):
            r = self.cfct_resource(d, "VendorGrants")
            r["parameters"] = [
                p for p in r["parameters"] if p["parameter_key"] != "CodeS3BucketPrefix"
            ]

        self.assertCaught(
            self.cfct(neither),
            "vendor-grants.yaml rule OneCodeBucket: Give CodeS3Bucket (a bucket in this region) "
            "or CodeS3BucketPrefix",
        )

        def both(d):
            self.cfct_resource(d, "VendorGrants")["parameters"].append(
                {"parameter_key": "CodeS3Bucket", "parameter_value": "my-code-us-east-1"}
            )

        self.assertCaught(self.cfct(both), "CodeS3Bucket or CodeS3BucketPrefix, not both")

        def grant_both(d):
            self.cfct_resource(d, "TelusGrant")["parameters"].append(
                {"parameter_key": "BucketName", "parameter_value": "corp-data"}
            )

        self.assertCaught(self.cfct(grant_both), "rule OneBucket: Give BucketName or")

    def test_cfct_alfred_helpers_are_not_judged(self) -> None:
        def ssm(d):
            for p in self.cfct_resource(d, "VendorGrants")["parameters"]:
                if p["parameter_key"] == "CodeS3BucketPrefix":
                    p["parameter_value"] = "$[alfred_ssm_/org/vendor-grants/code-bucket-prefix]"

        self.assertEqual(self.cfct(ssm), [])

    def test_cfct_grant_before_its_provider(self) -> None:
        lines = self.cfct(lambda d: d["resources"].reverse())
        self.assertCaught(
            lines,
            "TelusGrant imports vendor-grants-ServiceToken from VendorGrants, but nothing makes "
            "VendorGrants finish first: list VendorGrants before it",
        )

    def test_cfct_grant_without_provider(self) -> None:
        lines = self.cfct(lambda d: d["resources"].pop(0))
        self.assertCaught(
            lines, "imports vendor-grants-ServiceToken, which no stack of this recipe exports"
        )

    def test_cfct_grant_in_a_region_without_provider(self) -> None:
        lines = self.cfct(
            lambda d: self.cfct_resource(d, "TelusGrant")["regions"].append("eu-central-1")
        )
        self.assertCaught(lines, "which does not cover all of its accounts and regions")

    def test_cfct_export_name_changed(self) -> None:
        # The provider exports under another name: the grant's import is left unserved.
        lines = self.cfct(
            lambda d: self.cfct_resource(d, "VendorGrants")["parameters"].append(
                {"parameter_key": "ExportName", "parameter_value": "vendor-grants-2-ServiceToken"}
            )
        )
        self.assertCaught(lines, "which no stack of this recipe exports")

    def test_cfct_name_rule_is_createstacksets(self) -> None:
        # A hyphen is valid (the stack set is CustomControlTower-NAME); _ is not, nor a digit first.
        ok = self.cfct(lambda d: self.cfct_resource(d, "TelusGrant").update(name="telus-grant"))
        self.assertEqual(ok, [])
        lines = self.cfct(lambda d: self.cfct_resource(d, "TelusGrant").update(name="telus_grant"))
        self.assertCaught(lines, "'telus_grant' is not a letter, then letters, digits and -")
        lines = self.cfct(lambda d: self.cfct_resource(d, "TelusGrant").update(name="1grant"))
        self.assertCaught(lines, "'1grant' is not a letter")

    def test_cfct_nested_ou_with_a_slash(self) -> None:
        def slash(d):
            for name in ("VendorGrants", "TelusGrant"):
                ous = self.cfct_resource(d, name)["deployment_targets"]["organizational_units"]
                ous.append("Workloads/Prod")

        self.assertCaught(self.cfct(slash), "separated by ':' (Parent:Child)")

    def test_cfct_both_parameters_and_parameter_file(self) -> None:
        (self.dir / "telus.json").write_text('[{"ParameterKey": "Prefix", "ParameterValue": "x/"}]')
        lines = self.cfct(
            lambda d: self.cfct_resource(d, "TelusGrant").update(parameter_file="telus.json")
        )
        self.assertCaught(lines, "both parameters and parameter_file: CfCT would pass neither")

    def test_cfct_parameter_file_is_checked(self) -> None:
        (self.dir / "telus.json").write_text('[{"ParameterKey": "Prefx", "ParameterValue": "x/"}]')

        def use_file(d):
            r = self.cfct_resource(d, "TelusGrant")
            del r["parameters"]
            r["parameter_file"] = "telus.json"

        self.assertCaught(self.cfct(use_file), "Prefx is not a Parameter")

    def test_cfct_unquoted_boolean_and_account(self) -> None:
        def bad(d):
            vg = self.cfct_resource(d, "VendorGrants")
            vg["parameters"].append({"parameter_key": "AuditFix", "parameter_value": True})
            vg["deployment_targets"]["accounts"] = [111122223333]

        lines = self.cfct(bad)
        self.assertCaught(lines, "quote it: YAML reads it as a boolean", "quote account ids")

    def test_cfct_no_targets(self) -> None:
        lines = self.cfct(
            lambda d: self.cfct_resource(d, "TelusGrant").update(deployment_targets={})
        )
        self.assertCaught(lines, "deployment_targets: no accounts or OUs to deploy to")

    # -- LZA -------------------------------------------------------------------------------

    def test_lza_unknown_key(self) -> None:
        def misspell(d):
            s = self.lza_stack_set(d, "TelusGrant")
            s["dependson"] = s.pop("dependsOn")

        lines = self.lza(misspell)
        self.assertCaught(
            lines,
            "cloudFormationStackSets[1].dependson: unknown key 'dependson'",
            # and what the misspelling costs: the ordering
            "nothing makes VendorGrants finish first: add VendorGrants to its dependsOn",
        )

    def test_lza_other_sections_are_refused(self) -> None:
        lines = self.lza(lambda d: d["customizations"].update(cloudFormationStacks=[]))
        self.assertCaught(lines, "unknown key 'cloudFormationStacks'")

    def test_lza_missing_required_key(self) -> None:
        lines = self.lza(lambda d: self.lza_stack_set(d, "TelusGrant").pop("regions"))
        self.assertCaught(lines, "cloudFormationStackSets[1]: missing required key 'regions'")

    def test_lza_missing_required_parameter(self) -> None:
        def drop(d):
            s = self.lza_stack_set(d, "VendorGrants")
            s["parameters"] = [p for p in s["parameters"] if p["name"] != "CodeS3Key"]

        self.assertCaught(self.lza(drop), "Parameter CodeS3Key has no Default and is not given")

    def test_lza_parameter_not_in_template(self) -> None:
        def add(d):
            self.lza_stack_set(d, "VendorGrants")["parameters"].append(
                {"name": "Vendor", "value": "telus"}
            )

        self.assertCaught(
            self.lza(add), "Vendor is not a Parameter of cloudformation/vendor-grants.yaml"
        )

    def test_lza_value_not_a_string(self) -> None:
        def number(d):
            self.lza_stack_set(d, "VendorGrants")["parameters"].append(
                {"name": "LogRetentionInDays", "value": 90}
            )

        self.assertCaught(
            self.lza(number), "parameters[5].value: expected a string, found a number"
        )

    def test_lza_bad_and_missing_capabilities(self) -> None:
        lines = self.lza(
            lambda d: self.lza_stack_set(d, "VendorGrants").update(capabilities=["CAPABILITY_ALL"])
        )
        self.assertCaught(
            lines,
            "capabilities[0]: 'CAPABILITY_ALL' is not one of CAPABILITY_IAM",
            "creates IAM resources (FunctionRole, FunctionPolicy, AuditPolicy): VendorGrants needs "
            "CAPABILITY_IAM",
        )

    def test_lza_missing_template_file(self) -> None:
        lines = self.lza(
            lambda d: self.lza_stack_set(d, "VendorGrants").update(
                template="vendor-grants/vendor-grant.yaml"
            )
        )
        self.assertCaught(lines, "names cloudformation/vendor-grant.yaml, which is not a file")

    def test_lza_depends_on_unknown_and_cycle(self) -> None:
        def bad(d):
            self.lza_stack_set(d, "TelusGrant")["dependsOn"].append("ScaleGrant")
            self.lza_stack_set(d, "VendorGrants")["dependsOn"] = ["TelusGrant"]

        lines = self.lza(bad)
        self.assertCaught(
            lines,
            "depends on 'ScaleGrant', which is not a stack set of this file",
            "VendorGrants depends on itself",
        )

    def test_lza_bad_region_concurrency_and_conflicting_preferences(self) -> None:
        def bad(d):
            prefs = self.lza_stack_set(d, "TelusGrant")["operationPreferences"]
            prefs.update(regionConcurrencyType="PARALLELL", maxConcurrentCount=2)

        lines = self.lza(bad)
        self.assertCaught(
            lines,
            "'PARALLELL' is not one of SEQUENTIAL, PARALLEL",
            "maxConcurrentCount cannot be used with maxConcurrentPercentage",
        )

    def test_lza_excluded_regions_are_refused_not_subtracted(self) -> None:
        # LZA deploys a stack set to its regions as written: excludedRegions does nothing there.
        lines = self.lza(
            lambda d: self.lza_stack_set(d, "VendorGrants")["deploymentTargets"].update(
                excludedRegions=["eu-west-1"]
            )
        )
        self.assertCaught(lines, "LZA ignores excludedRegions for cloudFormationStackSets")
        self.assertFalse(any("does not cover" in line for line in lines), lines)

    def test_lza_nested_ou_with_a_colon(self) -> None:
        def colon(d):
            for name in ("VendorGrants", "TelusGrant"):
                ous = self.lza_stack_set(d, name)["deploymentTargets"]["organizationalUnits"]
                ous.append("Workloads:Prod")

        self.assertCaught(self.lza(colon), "LZA names a nested OU as organization-config.yaml does")

    def test_lza_provider_tolerates_no_failure(self) -> None:
        def tolerant(d):
            prefs = self.lza_stack_set(d, "VendorGrants")["operationPreferences"]
            prefs["failureTolerancePercentage"] = 10

        self.assertCaught(
            self.lza(tolerant), "VendorGrants exports what other stack sets import", "set it to 0"
        )

        def grant_tolerant(d):  # the grant may tolerate failures: nothing depends on it
            self.lza_stack_set(d, "TelusGrant")["operationPreferences"][
                "failureTolerancePercentage"
            ] = 10

        self.assertEqual(self.lza(grant_tolerant), [])

    def test_lza_grant_excludes_less_than_provider(self) -> None:
        lines = self.lza(
            lambda d: self.lza_stack_set(d, "VendorGrants")["deploymentTargets"].update(
                excludedAccounts=["Sandbox1"]
            )
        )
        self.assertCaught(lines, "does not cover all of its accounts and regions")

    # -- AFT -------------------------------------------------------------------------------

    def test_aft_unknown_argument(self) -> None:
        lines = self.aft('capabilities = ["CAPABILITY_IAM"]', 'capability = ["CAPABILITY_IAM"]')
        self.assertCaught(
            lines,
            "aws_cloudformation_stack.vendor_grants.capability: unknown argument 'capability'",
            "vendor_grants needs CAPABILITY_IAM",
        )

    def test_aft_bad_capability(self) -> None:
        lines = self.aft('["CAPABILITY_IAM"]', '["CAPABILITY_IAM", "CAPABILITY_ROOT"]')
        self.assertCaught(lines, "capabilities[1]: 'CAPABILITY_ROOT' is not one of")

    def test_aft_missing_required_parameter(self) -> None:
        lines = self.aft("    CodeS3Key          = local.code_key\n", "")
        self.assertCaught(lines, "Parameter CodeS3Key has no Default and is not given")

    def test_aft_parameter_not_in_template(self) -> None:
        lines = self.aft('Prefix     = "telus/"', 'Prefix     = "telus/"\n    Bucket = "x"')
        self.assertCaught(
            lines,
            "telus_grant.parameters.Bucket: Bucket is not a Parameter of cloudformation/examples/",
        )

    def test_aft_literal_values_through_locals(self) -> None:
        # CodeS3Key = local.code_key is judged with the local's value.
        lines = self.aft('code_key = "vendor-grants/', 'code_key = "')
        self.assertEqual(lines, [])
        lines = self.aft('Architecture       = "x86_64"', 'Architecture = "amd64"')
        self.assertCaught(lines, "'amd64' is not in AllowedValues")

    def test_aft_missing_template_file(self) -> None:
        lines = self.aft(
            "${local.template_prefix}/examples/grant-existing-bucket.yaml",
            "${local.template_prefix}/examples/telus-data.yaml",
        )
        self.assertCaught(
            lines, "names cloudformation/examples/telus-data.yaml, which is not a file"
        )

    def test_aft_template_url_outside_the_root(self) -> None:
        lines = self.aft("${local.template_prefix}/vendor-grants.yaml", "vendor-grants.yaml")
        self.assertCaught(
            lines, "amazonaws.com/vendor-grants.yaml' is not under ${local.template_prefix}/"
        )
        lines = self.aft(
            "${local.template_prefix}/vendor-grants.yaml",
            "${local.template_prefix}/${local.x}.yaml",
        )
        self.assertCaught(
            lines, "the template's path after ${local.template_prefix}/ must be literal"
        )

    def test_aft_template_body_from_a_file(self) -> None:
        old = (
            'template_url = "https://${local.code_bucket_prefix}-${each.key}.s3.${each.key}'
            '.amazonaws.com/${local.template_prefix}/examples/grant-existing-bucket.yaml"'
        )
        self.assertEqual(
            self.aft(
                old,
                'template_body = file("${path.module}/vendor-grants/examples/'
                'grant-existing-bucket.yaml")',
            ),
            [],
        )
        lines = self.aft(old, old + '\n  template_body = file("x.yaml")')
        self.assertCaught(lines, "give exactly one of template_url and template_body")

    def test_aft_grant_not_after_provider(self) -> None:
        text = "  for_each = aws_cloudformation_stack.vendor_grants\n"
        lines = self.aft(text, "  for_each = toset(local.regions)\n")
        # depends_on alone still orders it
        self.assertEqual(lines, [])
        text2 = (checker.AFT_TERRAFORM / "main.tf").read_text()
        text2 = text2.replace(text, "  for_each = toset(local.regions)\n").replace(
            "  depends_on = [aws_cloudformation_stack.vendor_grants]\n", ""
        )
        (self.dir / "main.tf").write_text(text2)
        self.assertCaught(
            self.check("aft", self.dir),
            "nothing makes vendor_grants finish first: add aws_cloudformation_stack.vendor_grants "
            "to its depends_on",
        )

    def test_aft_provider_constraint_has_an_upper_bound(self) -> None:
        lines = self.aft('version = "~> 6.0"', 'version = ">= 6.0.0"')
        self.assertCaught(lines, "'>= 6.0.0' has no upper bound and AFT keeps no lock file")
        self.assertEqual(self.aft('version = "~> 6.0"', 'version = ">= 6.0.0, < 7.0.0"'), [])

    def test_aft_grant_in_other_regions(self) -> None:
        lines = self.aft(
            "  for_each = aws_cloudformation_stack.vendor_grants\n  region   = each.key\n",
            '  region = "eu-west-1"\n',
        )
        self.assertCaught(lines, "which does not cover all of its accounts and regions")

    def test_aft_on_failure_and_name(self) -> None:
        lines = self.aft(
            'name     = "telus-grant"', 'name = "telus_data"\n  on_failure = "ROLLBACK_ALL"'
        )
        self.assertCaught(
            lines,
            "telus_grant.name: 'telus_data': a letter, then letters, digits and -",
            "'ROLLBACK_ALL' is not one of DO_NOTHING, ROLLBACK, DELETE",
        )


class Templates(unittest.TestCase):
    """What a template asks of a recipe, with templates of the test's own in place of the
    repository's cloudformation/ folder."""

    TEMPLATES = {
        "named-role.yaml": "Resources:\n  R:\n    Type: AWS::IAM::Role\n"
        "    Properties: {RoleName: fixed, AssumeRolePolicyDocument: {}}\n",
        "macro.yaml": "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  F: {Type: AWS::Serverless::Function}\n",
        "broken.yaml": "Resources: [\n",
    }

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        (root / "cloudformation").mkdir()
        for name, text in self.TEMPLATES.items():
            (root / "cloudformation" / name).write_text(text)
        self.saved = checker.CFN_DIR
        checker.CFN_DIR = root / "cloudformation"
        checker._TEMPLATES.clear()
        self.config = root / "customizations-config.yaml"

    def tearDown(self) -> None:
        checker.CFN_DIR = self.saved
        checker._TEMPLATES.clear()
        self.tmp.cleanup()

    def lza(self, template: str, capabilities: list[str]) -> list[str]:
        stack_set = {
            "name": "S",
            "template": f"vendor-grants/{template}",
            "capabilities": capabilities,
            "deploymentTargets": {"organizationalUnits": ["Workloads"]},
            "regions": ["us-east-1"],
        }
        config = {"customizations": {"cloudFormationStackSets": [stack_set]}}
        self.config.write_text(yaml.safe_dump(config))
        problems, _ = checker.run(None, self.config, None)
        return problems.lines()

    def test_named_iam_needs_named_iam(self) -> None:
        lines = self.lza("named-role.yaml", ["CAPABILITY_IAM"])
        self.assertTrue(any("named IAM resources (R)" in line for line in lines), lines)
        self.assertEqual(self.lza("named-role.yaml", ["CAPABILITY_NAMED_IAM"]), [])

    def test_a_transform_needs_auto_expand(self) -> None:
        lines = self.lza("macro.yaml", [])
        self.assertTrue(any("needs CAPABILITY_AUTO_EXPAND" in line for line in lines), lines)
        self.assertEqual(self.lza("macro.yaml", ["CAPABILITY_AUTO_EXPAND"]), [])

    def test_an_unreadable_template_is_named(self) -> None:
        lines = self.lza("broken.yaml", [])
        self.assertTrue(any("broken.yaml cannot be read" in line for line in lines), lines)


class Values(unittest.TestCase):
    """The parameter constraints on their own."""

    def test_comma_delimited_lists_are_judged_element_by_element(self) -> None:
        spec = {"Type": "CommaDelimitedList", "AllowedPattern": "^ou-[a-z0-9]+$"}
        self.assertEqual(checker.value_problems(spec, "ou-a, ou-b"), [])
        self.assertEqual(len(checker.value_problems(spec, "ou-a,r-b")), 1)

    def test_numbers(self) -> None:
        spec = {"Type": "Number", "AllowedValues": [1, 3, 90], "MinValue": 1}
        self.assertEqual(checker.value_problems(spec, "90"), [])
        self.assertEqual(len(checker.value_problems(spec, "91")), 1)
        self.assertEqual(len(checker.value_problems(spec, "ninety")), 1)

    def test_lengths(self) -> None:
        spec = {"Type": "String", "MinLength": 2, "MaxLength": 3}
        self.assertEqual(len(checker.value_problems(spec, "a")), 1)
        self.assertEqual(len(checker.value_problems(spec, "abcd")), 1)

    def test_string_allowed_values_as_cloudformation_sends_them(self) -> None:
        self.assertEqual(checker.value_problems({"AllowedValues": ["false", "true"]}, "true"), [])
        self.assertEqual(
            len(checker.value_problems({"AllowedValues": ["false", "true"]}, "True")), 1
        )


if __name__ == "__main__":
    unittest.main()
