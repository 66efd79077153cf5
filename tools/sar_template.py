#!/usr/bin/env python3
"""The Serverless Application Repository edition of cloudformation/vendor-grants.yaml.

A SAR application carries its code: `sam package` uploads the zip the template names and SAR
copies it into every account that deploys the application. So the published template differs
from the one `make deploy` uses in exactly these ways, and in no other:

- Function.Code is the zip built by `make package` (a local path `sam package` uploads), and the
  CodeS3Bucket, CodeS3BucketPrefix, CodeS3Key and CodeS3ObjectVersion parameters go, with what
  only they use (conditions HasCodeVersion and CodeBucketPerRegion, rule OneCodeBucket, output
  CodeS3Bucket);
- the Architecture parameter goes, and the function's architecture is the zip's;
- the two inline policies are AWS::IAM::Policy (Roles: [the role]) rather than
  AWS::IAM::RolePolicy, the same inline policies in the resource type SAR lists as supported;
- Metadata.AWS::ServerlessRepo::Application gets the readme path relative to the output, and
  the licence and source URL when given (the repository names neither; SAR needs a licence
  only to share an application publicly).

It then checks what SAR would refuse: a resource type outside SAR's supported list (the subset
this template may use), iam:PassRole / iam:PutRolePolicy / iam:AttachRolePolicy / iam:* on "*",
metadata fields missing or malformed, and a SemanticVersion or a Version output other than
Cargo.toml's version (the deploy template's Version output is checked the same way, so a release
that bumps Cargo.toml cannot ship a template that names the old one).

    sar_template.py --zip dist/vendor-grants-lambda-x86_64.zip --arch x86_64 --out dist/sar/template.json
        [--license-id Apache-2.0 --license-file LICENSE] [--source-url https://...]

and, once `aws cloudformation package --use-json` has uploaded the zip, readme and licence:

    sar_template.py requests --packaged dist/sar/packaged.json --out-dir dist/sar

writes the `--cli-input-json` bodies of serverlessrepo CreateApplication (a first publication)
and CreateApplicationVersion (every later one) from the packaged template's metadata.

Run with the lint venv's Python (cfn-lint parses the YAML and its short-form tags). Exit 1 with
one line per problem.
"""

import argparse
import copy
import json
import os
import re
import sys

from cfnlint.decode import decode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "cloudformation", "vendor-grants.yaml")
CODE_PARAMETERS = ["CodeS3Bucket", "CodeS3BucketPrefix", "CodeS3Key", "CodeS3ObjectVersion"]
# What only the code parameters use, which goes with them.
CODE_CONDITIONS = ["HasCodeVersion", "CodeBucketPerRegion"]
CODE_RULES = ["OneCodeBucket"]
CODE_OUTPUTS = ["CodeS3Bucket"]
SAR_KEY = "AWS::ServerlessRepo::Application"
# From SAR's "List of Supported AWS Resources" (docs.aws.amazon.com/serverlessrepo/latest/
# devguide/list-supported-resources.html): the types this template may use.
SUPPORTED = {
    "AWS::DynamoDB::Table",
    "AWS::Events::Rule",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::KMS::Key",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
}
# SAR refuses to publish these on all resources (its "overly broad IAM permission patterns").
BROAD = {"iam:passrole", "iam:putrolepolicy", "iam:attachrolepolicy", "iam:*", "*"}
ARCHES = {"x86_64", "arm64"}


def plain(node):
    """cfn-lint's nodes as plain dicts, lists and strings."""
    return json.loads(json.dumps(node))


def cargo_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        for line in f:
            m = re.match(r'^version\s*=\s*"([^"]+)"', line)
            if m:
                return m.group(1)
    raise SystemExit("Cargo.toml: no version")


def transform(template, zip_rel, arch, readme_rel, license_id, license_rel, source_url):
    t = copy.deepcopy(template)
    for name in CODE_PARAMETERS + ["Architecture"]:
        t["Parameters"].pop(name, None)
    for name in CODE_CONDITIONS:
        t.get("Conditions", {}).pop(name, None)
    for name in CODE_RULES:
        t.get("Rules", {}).pop(name, None)
    if "Rules" in t and not t["Rules"]:
        del t["Rules"]
    for name in CODE_OUTPUTS:
        t.get("Outputs", {}).pop(name, None)
    interface = t["Metadata"].get("AWS::CloudFormation::Interface", {})
    for group in interface.get("ParameterGroups", []):
        group["Parameters"] = [
            p for p in group["Parameters"] if p not in CODE_PARAMETERS + ["Architecture"]
        ]
    interface["ParameterGroups"] = [
        g for g in interface.get("ParameterGroups", []) if g["Parameters"]
    ]
    for name in CODE_PARAMETERS + ["Architecture"]:
        interface.get("ParameterLabels", {}).pop(name, None)

    function = t["Resources"]["Function"]["Properties"]
    function["Code"] = zip_rel
    function["Architectures"] = [arch]

    for resource in t["Resources"].values():
        if resource["Type"] == "AWS::IAM::RolePolicy":
            props = resource["Properties"]
            resource["Type"] = "AWS::IAM::Policy"
            resource["Properties"] = {
                "PolicyName": props["PolicyName"],
                "PolicyDocument": props["PolicyDocument"],
                "Roles": [props["RoleName"]],
            }

    app = t["Metadata"][SAR_KEY]
    app["ReadmeUrl"] = readme_rel
    if license_id:
        app["SpdxLicenseId"] = license_id
    if license_rel:
        app["LicenseUrl"] = license_rel
    if source_url:
        app["SourceCodeUrl"] = source_url
        app["HomePageUrl"] = source_url
    return t


def statements(document):
    s = document.get("Statement", [])
    return s if isinstance(s, list) else [s]


def as_list(v):
    return v if isinstance(v, list) else [v]


def check(t, version):
    problems = []
    app = t.get("Metadata", {}).get(SAR_KEY)
    if not isinstance(app, dict):
        return [f"Metadata.{SAR_KEY}: missing"]
    for field in ["Name", "Description", "Author", "ReadmeUrl", "SemanticVersion"]:
        if not isinstance(app.get(field), str) or not app[field].strip():
            problems.append(f"Metadata.{SAR_KEY}.{field}: missing")
    if not re.fullmatch(r"[a-zA-Z0-9-]{1,140}", app.get("Name", "")):
        problems.append(f"Metadata.{SAR_KEY}.Name: 1-140 letters, digits and hyphens")
    if not re.fullmatch(r"[a-zA-Z0-9 -]{1,127}", app.get("Author", "")):
        problems.append(f"Metadata.{SAR_KEY}.Author: 1-127 letters, digits, spaces and hyphens")
    if not 1 <= len(app.get("Description", "")) <= 256:
        problems.append(f"Metadata.{SAR_KEY}.Description: 1-256 characters")
    if app.get("SemanticVersion") != version:
        problems.append(
            f"Metadata.{SAR_KEY}.SemanticVersion: {app.get('SemanticVersion')!r}, but Cargo.toml "
            f"says {version!r}; keep them equal"
        )
    output = t.get("Outputs", {}).get("Version", {}).get("Value")
    if str(output) != version:
        problems.append(
            f"Outputs.Version: {output!r}, but Cargo.toml says {version!r}; keep them equal"
        )
    for label in app.get("Labels", []):
        if not re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label):
            problems.append(f"Metadata.{SAR_KEY}.Labels: {label!r} is not a valid label")
    if len(app.get("Labels", [])) > 10:
        problems.append(f"Metadata.{SAR_KEY}.Labels: at most 10")
    for name, resource in t["Resources"].items():
        kind = resource["Type"]
        if kind not in SUPPORTED:
            problems.append(f"Resources.{name}: {kind} is not a resource type SAR supports")
        if kind in ("AWS::IAM::Policy", "AWS::IAM::Role"):
            docs = []
            if kind == "AWS::IAM::Policy":
                docs.append(resource["Properties"]["PolicyDocument"])
            for p in resource["Properties"].get("Policies", []):
                docs.append(p["PolicyDocument"])
            for doc in docs:
                for s in statements(doc):
                    if s.get("Effect") != "Allow" or as_list(s.get("Resource")) != ["*"]:
                        continue
                    broad = [a for a in as_list(s.get("Action", [])) if str(a).lower() in BROAD]
                    if broad:
                        problems.append(
                            f"Resources.{name}: {', '.join(broad)} on \"*\" (SAR refuses it)"
                        )
    return problems


def requests(packaged):
    """The CreateApplication and CreateApplicationVersion inputs for a packaged template."""
    app = packaged["Metadata"][SAR_KEY]
    body = json.dumps(packaged, indent=2)
    create = {"TemplateBody": body}
    for field in [
        "Name",
        "Description",
        "Author",
        "SemanticVersion",
        "ReadmeUrl",
        "Labels",
        "SpdxLicenseId",
        "LicenseUrl",
        "SourceCodeUrl",
        "HomePageUrl",
    ]:
        if app.get(field):
            create[field] = app[field]
    version = {"SemanticVersion": app["SemanticVersion"], "TemplateBody": body}
    if app.get("SourceCodeUrl"):
        version["SourceCodeUrl"] = app["SourceCodeUrl"]
    return create, version


def write_requests(argv):
    ap = argparse.ArgumentParser(prog="sar_template.py requests")
    ap.add_argument("--packaged", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args(argv)
    with open(args.packaged) as f:
        packaged = json.load(f)
    app = packaged.get("Metadata", {}).get(SAR_KEY, {})
    problems = check(packaged, cargo_version())
    for field in ["ReadmeUrl", "LicenseUrl"]:
        url = app.get(field)
        if url and not url.startswith(("s3://", "https://")):
            problems.append(f"Metadata.{SAR_KEY}.{field}: {url!r} was not uploaded by package")
    code = packaged["Resources"]["Function"]["Properties"].get("Code")
    if not isinstance(code, dict) or "S3Bucket" not in code:
        problems.append("Resources.Function.Code: not uploaded by package")
    if problems:
        for p in problems:
            print(f"{args.packaged}: {p}", file=sys.stderr)
        return 1
    create, version = requests(packaged)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, body in [("create-application", create), ("create-application-version", version)]:
        with open(os.path.join(args.out_dir, f"{name}.json"), "w") as f:
            json.dump(body, f, indent=2)
    print(f"{args.out_dir}: create-application.json, create-application-version.json")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["requests"]:
        return write_requests(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zip", required=True, help="the zip `make package` built")
    ap.add_argument("--arch", required=True, choices=sorted(ARCHES))
    ap.add_argument("--out", required=True, help="where to write the SAR template (JSON)")
    ap.add_argument("--license-id", default="", help="SPDX licence id, e.g. Apache-2.0")
    ap.add_argument("--license-file", default="", help="the licence text file")
    ap.add_argument("--source-url", default="", help="public URL of the source repository")
    args = ap.parse_args(argv)

    template, matches = decode(TEMPLATE)
    if matches or template is None:
        print(f"{TEMPLATE}: does not parse: {matches}", file=sys.stderr)
        return 1
    template = plain(template)
    problems = []

    out_dir = os.path.dirname(os.path.abspath(args.out))
    rel = lambda p: os.path.relpath(os.path.abspath(p), out_dir)  # noqa: E731
    if not os.path.isfile(args.zip):
        problems.append(f"{args.zip}: no such zip (run `make package ARCH={args.arch}`)")
    if args.license_file and not os.path.isfile(args.license_file):
        problems.append(f"{args.license_file}: no such licence file")
    if bool(args.license_id) != bool(args.license_file):
        problems.append("give both --license-id and --license-file, or neither")
    readme = os.path.join(ROOT, "README.md")
    sar = transform(
        template,
        rel(args.zip),
        args.arch,
        rel(readme),
        args.license_id,
        rel(args.license_file) if args.license_file else "",
        args.source_url,
    )
    problems += check(sar, cargo_version())
    text = json.dumps(sar)
    left = [
        p for p in CODE_PARAMETERS + ["Architecture"] if json.dumps({"Ref": p})[1:-1] in text
    ]
    if left:
        problems.append(f"the SAR template still refers to {', '.join(left)}")
    if problems:
        for p in problems:
            print(f"{TEMPLATE}: {p}", file=sys.stderr)
        return 1
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(sar, f, indent=2)
        f.write("\n")
    kinds = sorted({r["Type"] for r in sar["Resources"].values()})
    print(
        f"{args.out}: SAR edition {sar['Metadata'][SAR_KEY]['SemanticVersion']} for {args.arch}, "
        f"{len(sar['Resources'])} resources of {len(kinds)} supported types, code {rel(args.zip)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
