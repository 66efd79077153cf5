"""Tests of tools/sar_template.py: the SAR edition and what SAR would refuse."""

import copy
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sar_template as sar  # noqa: E402


def template():
    t, matches = sar.decode(sar.TEMPLATE)
    assert not matches, matches
    return sar.plain(t)


class SarTemplate(unittest.TestCase):
    def setUp(self):
        self.t = template()
        self.version = sar.cargo_version()

    def edition(self, t=None):
        return sar.transform(t or self.t, "../code.zip", "arm64", "../README.md", "", "", "")

    def test_the_template_passes_and_the_edition_carries_its_code(self):
        e = self.edition()
        self.assertEqual(sar.check(e, self.version), [])
        fn = e["Resources"]["Function"]["Properties"]
        self.assertEqual(fn["Code"], "../code.zip")
        self.assertEqual(fn["Architectures"], ["arm64"])
        for p in sar.CODE_PARAMETERS + ["Architecture"]:
            self.assertNotIn(p, e["Parameters"])
            self.assertNotIn(json.dumps({"Ref": p}), json.dumps(e))
            self.assertNotIn(p, json.dumps(e["Metadata"]))
        for c in sar.CODE_CONDITIONS:
            self.assertNotIn(c, e["Conditions"])
        self.assertNotIn("Rules", e)
        self.assertNotIn("CodeS3Bucket", e["Outputs"])
        self.assertEqual(e["Outputs"]["Version"]["Value"], self.version)

    def test_inline_policies_become_iam_policies_unchanged(self):
        e = self.edition()
        for name in ("FunctionPolicy", "AuditPolicy"):
            before = self.t["Resources"][name]
            after = e["Resources"][name]
            self.assertEqual(after["Type"], "AWS::IAM::Policy")
            self.assertEqual(after["Properties"]["Roles"], [before["Properties"]["RoleName"]])
            self.assertEqual(
                after["Properties"]["PolicyDocument"], before["Properties"]["PolicyDocument"]
            )
            self.assertEqual(after.get("Condition"), before.get("Condition"))

    def test_what_sar_refuses_is_caught(self):
        t = self.edition()
        t["Resources"]["Queue"] = {"Type": "AWS::SQS::QueueInlinePolicy", "Properties": {}}
        self.assertIn("not a resource type SAR supports", " ".join(sar.check(t, self.version)))
        # The deploy template's inline policies are converted, never published as they are.
        self.assertIn("AWS::IAM::RolePolicy", " ".join(sar.check(self.t, self.version)))

        e = self.edition()
        doc = e["Resources"]["FunctionPolicy"]["Properties"]["PolicyDocument"]
        doc["Statement"].append({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"})
        self.assertIn('iam:PassRole on "*"', " ".join(sar.check(e, self.version)))

        t = self.edition()
        t["Metadata"][sar.SAR_KEY]["SemanticVersion"] = "9.9.9"
        self.assertIn("keep them equal", " ".join(sar.check(t, self.version)))

        # The deploy template's Version output names the release too (Cargo.toml's version).
        self.assertEqual(sar.check(sar.transform(self.t, "c", "x86_64", "R", "", "", ""), self.version), [])
        t = self.edition()
        t["Outputs"]["Version"]["Value"] = "9.9.9"
        self.assertIn("Outputs.Version", " ".join(sar.check(t, self.version)))

        t = self.edition()
        del t["Metadata"][sar.SAR_KEY]["Author"]
        self.assertIn("Author: missing", " ".join(sar.check(t, self.version)))

        t = self.edition()
        t["Metadata"][sar.SAR_KEY]["Name"] = "vendor grants!"
        self.assertIn("Name: 1-140", " ".join(sar.check(t, self.version)))

    def test_licence_and_source_url_are_added_only_when_given(self):
        e = self.edition()
        app = e["Metadata"][sar.SAR_KEY]
        for field in ("SpdxLicenseId", "LicenseUrl", "SourceCodeUrl"):
            self.assertNotIn(field, app)
        e = sar.transform(self.t, "c.zip", "x86_64", "R.md", "MIT", "LICENSE", "https://x/y")
        app = e["Metadata"][sar.SAR_KEY]
        self.assertEqual(
            (app["SpdxLicenseId"], app["LicenseUrl"], app["SourceCodeUrl"]),
            ("MIT", "LICENSE", "https://x/y"),
        )

    def test_the_deploy_template_names_cargo_tomls_version(self):
        # The template itself (not only the SAR edition): its Version output is the release.
        self.assertEqual(str(self.t["Outputs"]["Version"]["Value"]), self.version)
        self.assertEqual(self.t["Metadata"][sar.SAR_KEY]["SemanticVersion"], self.version)

    def test_the_registry_is_kept(self):
        # The lock table holds the grant registry: kept with the stack's deletion or a replacement,
        # and restorable (point-in-time recovery).
        table = self.t["Resources"]["LockTable"]
        self.assertEqual((table["DeletionPolicy"], table["UpdateReplacePolicy"]), ("Retain", "Retain"))
        pitr = table["Properties"]["PointInTimeRecoverySpecification"]
        self.assertEqual(pitr, {"PointInTimeRecoveryEnabled": True})

    def test_one_code_bucket_or_a_prefix(self):
        # The rule refuses neither and both; the function reads PREFIX-REGION with a prefix.
        rule = self.t["Rules"]["OneCodeBucket"]["Assertions"]
        self.assertEqual(len(rule), 2)
        code = self.t["Resources"]["Function"]["Properties"]["Code"]["S3Bucket"]
        self.assertEqual(
            code,
            {"Fn::If": ["CodeBucketPerRegion", {"Fn::Sub": "${CodeS3BucketPrefix}-${AWS::Region}"}, {"Ref": "CodeS3Bucket"}]},
        )

    def test_a_missing_zip_is_refused_naming_the_command(self):
        out = os.path.join(sar.ROOT, "target", "sar-test", "t.json")
        code = sar.main(["--zip", "/nonexistent.zip", "--arch", "x86_64", "--out", out])
        self.assertEqual(code, 1)
        self.assertFalse(os.path.exists(out))


    def test_publish_requests_come_from_the_packaged_metadata(self):
        e = sar.transform(self.t, "c.zip", "x86_64", "R.md", "MIT", "L", "https://x/y")
        e["Resources"]["Function"]["Properties"]["Code"] = {"S3Bucket": "b", "S3Key": "k"}
        e["Metadata"][sar.SAR_KEY]["ReadmeUrl"] = "s3://b/readme"
        create, version = sar.requests(e)
        self.assertEqual(create["Name"], "vendor-grants")
        self.assertEqual(create["SemanticVersion"], self.version)
        self.assertEqual((create["SpdxLicenseId"], create["SourceCodeUrl"]), ("MIT", "https://x/y"))
        self.assertEqual(json.loads(create["TemplateBody"]), e)
        self.assertEqual(set(version), {"SemanticVersion", "TemplateBody", "SourceCodeUrl"})


if __name__ == "__main__":
    unittest.main()
