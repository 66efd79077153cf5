#!/usr/bin/env python3
"""Checks the account-vending recipes in cloudformation/examples/account-vending/.

Each recipe deploys this repository's templates with another tool: a Customizations for AWS Control
Tower (CfCT) manifest, a Landing Zone Accelerator (LZA) customizations-config.yaml fragment, and an
Account Factory for Terraform (AFT) account customization. For each one this checks

  * its shape, against a small schema written from the tool's documentation and source (required
    keys, allowed keys: an unknown key is an error, value types, enum values);
  * that every template it names is a file of this repository, by the path rule of that recipe
    (the recipe README and the RECIPE ROOTS below);
  * the parameters: each one passed is a Parameter of that template, each Parameter without a
    Default is passed, and literal values meet the Parameter's AllowedValues, AllowedPattern,
    length and value limits;
  * capabilities: valid names, and enough for the template's IAM resources (and macros);
  * order: a stack that imports an export (vendor-grants-ServiceToken) comes after a stack of the
    recipe that exports it, on the same or more accounts and regions, as the tool orders them.

Usage (with the lint venv, which has PyYAML and the HCL parser):
  .venv-lint/bin/python tools/check_account_vending.py              # the three recipes
  .venv-lint/bin/python tools/check_account_vending.py --cfct FILE --lza FILE --aft DIR

Problems print as FILE:PATH: MESSAGE and the exit code is 1; otherwise one summary line, exit 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CFN_DIR = REPO / "cloudformation"
RECIPES = CFN_DIR / "examples" / "account-vending"
CFCT_MANIFEST = RECIPES / "custom-control-tower-configuration" / "manifest.yaml"
LZA_CONFIG = RECIPES / "aws-accelerator-config" / "customizations-config.yaml"
AFT_TERRAFORM = RECIPES / "aft-account-customizations" / "VENDOR_GRANTS" / "terraform"

# RECIPE ROOTS. Each recipe names a template as ROOT + P, where P is the template's path under this
# repository's cloudformation/ folder (a copy of it sits at ROOT in the tool's configuration).
CFCT_ROOT = "templates/vendor-grants/"  # relative to manifest.yaml
LZA_ROOT = "vendor-grants/"  # relative to the LZA configuration repository
AFT_URL_ROOT = "${local.template_prefix}/"  # the S3 key prefix inside template_url
AFT_BODY_ROOT = "${path.module}/vendor-grants/"  # template_body = file("<root>P")

# What CfCT passes to every stack set it creates (its codebuild_scripts/state_machine_trigger.py).
CFCT_CAPABILITIES = ["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]

REGION = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+"
# CloudFormation's StackName and StackSetName: a letter, then letters, digits and hyphens, <= 128.
STACK_NAME = r"[A-Za-z][-A-Za-z0-9]{0,127}"
# A CfCT resource name: "a-z, A-Z, 0-9, and hyphen (-). The name must start with an alphabetic
# character" (AWS Control Tower User Guide, "The resources section of the CfCT manifest file",
# https://docs.aws.amazon.com/controltower/latest/userguide/cfct-manifest-file-resources-section.html).
# CfCT names the stack set CustomControlTower-NAME (19 characters), which CreateStackSet must take.
CFCT_NAME = r"[A-Za-z][-A-Za-z0-9]{0,108}"


# ---------------------------------------------------------------------------------------------
# Problems


@dataclass
class Problems:
    items: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, file: Path | str, path: str, message: str) -> None:
        self.items.append((display(file), path or "(top)", message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        return [f"{file}:{path}: {message}" for file, path, message in self.items]


def display(file: Path | str) -> str:
    path = Path(file)
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(file)


def join_path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else str(key)


# ---------------------------------------------------------------------------------------------
# A small schema language: enough for the documented shapes of the CfCT manifest and the LZA
# configuration, with every unknown key an error.

Err = Callable[[str, str], None]


class Node:
    def check(self, value: Any, path: str, err: Err) -> None:
        raise NotImplementedError


class Any_(Node):
    def check(self, value, path, err):
        pass


class Str(Node):
    def __init__(self, enum=None, pattern=None, nonempty=False, doc=""):
        self.enum, self.pattern, self.nonempty, self.doc = enum, pattern, nonempty, doc

    def check(self, value, path, err):
        if not isinstance(value, str):
            err(path, f"expected a string, found {kind(value)}")
            return
        if self.nonempty and value == "":
            err(path, "must not be empty")
        if self.enum is not None and value not in self.enum:
            err(path, f"{value!r} is not one of {', '.join(self.enum)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            err(path, f"{value!r} is not {self.doc or 'of the form ' + self.pattern}")


class Bool(Node):
    def check(self, value, path, err):
        if not isinstance(value, bool):
            err(path, f"expected true or false, found {kind(value)}")


class Number(Node):
    def check(self, value, path, err):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            err(path, f"expected a number, found {kind(value)}")


class Date(Node):
    """pykwalify's date: a YAML date, or a string in that format."""

    def __init__(self, enum):
        self.enum = enum

    def check(self, value, path, err):
        text = value.isoformat() if isinstance(value, datetime.date) else value
        if not isinstance(text, str):
            err(path, f"expected a date, found {kind(value)}")
        elif text not in self.enum:
            err(path, f"{text!r} is not one of {', '.join(self.enum)}")


class Seq(Node):
    def __init__(self, item: Node, unique=False):
        self.item, self.unique = item, unique

    def check(self, value, path, err):
        if not isinstance(value, list):
            err(path, f"expected a list, found {kind(value)}")
            return
        seen = []
        for i, item in enumerate(value):
            self.item.check(item, join_path(path, i), err)
            if self.unique and item in seen:
                err(join_path(path, i), f"{item!r} is listed twice")
            seen.append(item)


class Map(Node):
    def __init__(self, required=None, optional=None, extra_keys=None, where=""):
        self.required = required or {}
        self.optional = optional or {}
        self.extra_keys = extra_keys  # a regex of further allowed keys (LZA's YAML anchors)
        self.where = where

    def check(self, value, path, err):
        if not isinstance(value, dict):
            err(path, f"expected a mapping, found {kind(value)}")
            return
        known = {**self.required, **self.optional}
        for key in self.required:
            if key not in value:
                err(path, f"missing required key {key!r}")
        for key, item in value.items():
            if key in known:
                known[key].check(item, join_path(path, key), err)
            elif not (self.extra_keys and isinstance(key, str) and re.match(self.extra_keys, key)):
                err(
                    join_path(path, str(key)),
                    f"unknown key {key!r}{self.where}; valid keys: {', '.join(sorted(known))}",
                )


def kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        datetime.date: "a date",
    }.get(type(value), type(value).__name__)


# CfCT manifest, schema version 2021-03-15: source/src/cfct/validation/manifest-v2.schema.yaml of
# aws-solutions/aws-control-tower-customizations (validated there with pykwalify, which rejects
# keys the schema does not define), and the AWS Control Tower User Guide's "The CfCT manifest
# file" and "The resources section of the CfCT manifest file" (name's valid characters).
CFCT_PARAMETER = Map(required={"parameter_key": Str(), "parameter_value": Any_()})
CFCT_RESOURCE = Map(
    required={
        "name": Str(
            pattern=CFCT_NAME,
            doc="a letter, then letters, digits and - (the stack set is CustomControlTower-NAME, "
            "and CreateStackSet takes no _), at most 109",
        ),
        "resource_file": Str(nonempty=True),
        "deployment_targets": Map(
            optional={"accounts": Seq(Any_()), "organizational_units": Seq(Str())},
            where=" in deployment_targets",
        ),
        "deploy_method": Str(enum=["scp", "stack_set", "rcp"]),
    },
    optional={
        "description": Str(),
        "parameter_file": Str(),
        "parameters": Seq(CFCT_PARAMETER),
        "regions": Seq(Str(pattern=REGION, doc="a region name"), unique=True),
        "export_outputs": Seq(Map(required={"name": Str(), "value": Str()})),
    },
    where=" in a CfCT resource",
)
CFCT_SCHEMA = Map(
    required={
        "region": Str(pattern=REGION, doc="a region name"),
        "version": Date(enum=["2021-03-15"]),
    },
    optional={"enable_stack_set_deletion": Bool(), "resources": Seq(CFCT_RESOURCE)},
    where=" in a CfCT manifest",
)

# LZA customizations-config.yaml: ICustomizationsConfig / ICustomizationConfig /
# ICloudFormationStackSet of awslabs/landing-zone-accelerator-on-aws,
# source/packages/@aws-accelerator/config/lib/models/customizations-config.ts and its JSON schema
# lib/schemas/customizations-config.json (additionalProperties: false throughout).
LZA_STRINGS = Seq(Str())
LZA_STACK_SET = Map(
    required={
        "deploymentTargets": Map(
            optional={
                "accounts": LZA_STRINGS,
                "excludedAccounts": LZA_STRINGS,
                "excludedRegions": LZA_STRINGS,
                "organizationalUnits": LZA_STRINGS,
            },
            where=" in deploymentTargets",
        ),
        "name": Str(nonempty=True),
        "regions": Seq(Str(pattern=REGION, doc="a region name")),
        "template": Str(nonempty=True),
    },
    optional={
        "capabilities": Seq(Str(enum=CAPABILITIES)),
        "dependsOn": LZA_STRINGS,
        "description": Str(nonempty=True),
        "operationPreferences": Map(
            optional={
                "failureToleranceCount": Number(),
                "failureTolerancePercentage": Number(),
                "maxConcurrentCount": Number(),
                "maxConcurrentPercentage": Number(),
                # Its description: "Valid values are SEQUENTIAL and PARALLEL".
                "regionConcurrencyType": Str(enum=["SEQUENTIAL", "PARALLEL"]),
                "regionOrder": LZA_STRINGS,
            },
            where=" in operationPreferences",
        ),
        "parameters": Seq(Map(required={"name": Str(), "value": Str()}, where=" in a parameter")),
        "administrationRoleArn": Str(),
        "executionRoleName": Str(),
    },
    where=" in a cloudFormationStackSets entry",
)
LZA_SCHEMA = Map(
    optional={
        "customizations": Map(
            optional={"cloudFormationStackSets": Seq(LZA_STACK_SET)},
            where=" in customizations (this fragment deploys cloudFormationStackSets only)",
        ),
    },
    extra_keys=r"\.",  # top-level keys starting with "." hold YAML anchors
    where=" (this fragment has customizations.cloudFormationStackSets only)",
)

# AFT: the arguments of the Terraform AWS provider's aws_cloudformation_stack
# (website/docs/r/cloudformation_stack.html.markdown of hashicorp/terraform-provider-aws) and
# Terraform's meta-arguments.
TF_STACK_ARGUMENTS = {
    "region", "name", "template_body", "template_url", "capabilities", "disable_rollback",
    "notification_arns", "on_failure", "parameters", "policy_body", "policy_url", "tags",
    "iam_role_arn", "timeout_in_minutes", "timeouts",
}  # fmt: skip
TF_META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}
TF_ON_FAILURE = ["DO_NOTHING", "ROLLBACK", "DELETE"]


# ---------------------------------------------------------------------------------------------
# CloudFormation templates


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, ...) as their long forms."""


def _short_form(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    name = suffix if suffix in ("Ref", "Condition") else "Fn::" + suffix
    return {name: value}


CfnLoader.add_multi_constructor("!", _short_form)

# Resource types that need CAPABILITY_IAM (or CAPABILITY_NAMED_IAM), and the properties that give
# them a custom name, which needs CAPABILITY_NAMED_IAM (CloudFormation API reference, CreateStack,
# Capabilities).
IAM_TYPES = {
    "AWS::IAM::AccessKey": None,
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::GroupPolicy": None,
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": None,
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::RolePolicy": None,
    "AWS::IAM::User": "UserName",
    "AWS::IAM::UserPolicy": None,
    "AWS::IAM::UserToGroupAddition": None,
}


def entries(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every key and value of every mapping in a parsed document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from entries(item)


@dataclass
class Template:
    rel: str  # e.g. cloudformation/vendor-grants.yaml
    body: dict
    error: str = ""  # why it could not be read

    @property
    def parameters(self) -> dict:
        params = self.body.get("Parameters") or {}
        return params if isinstance(params, dict) else {}

    @property
    def resources(self) -> dict:
        resources = self.body.get("Resources") or {}
        return resources if isinstance(resources, dict) else {}

    def iam_resources(self) -> tuple[list[str], list[str]]:
        """The IAM resources, and those of them with a custom name."""
        iam, named = [], []
        for logical, resource in self.resources.items():
            rtype = resource.get("Type") if isinstance(resource, dict) else None
            if rtype in IAM_TYPES:
                iam.append(logical)
                name_property = IAM_TYPES[rtype]
                if name_property and name_property in (resource.get("Properties") or {}):
                    named.append(logical)
        return iam, named

    def uses_macros(self) -> bool:
        return "Transform" in self.body or any(k == "Fn::Transform" for k, _ in entries(self.body))

    def imports(self) -> set[str]:
        return {
            value
            for key, value in entries(self.resources)
            if key == "Fn::ImportValue" and isinstance(value, str)
        }

    def exports(self, given: dict[str, Given]) -> set[str]:
        """Export names, with Refs to parameters resolved from literal values or Defaults."""
        found = set()
        for output in (self.body.get("Outputs") or {}).values():
            name = ((output or {}).get("Export") or {}).get("Name")
            if isinstance(name, dict) and set(name) == {"Ref"}:
                param = name["Ref"]
                if param in given:
                    name = given[param].value
                else:
                    name = (self.parameters.get(param) or {}).get("Default")
            if isinstance(name, str):
                found.add(name)
        return found


_TEMPLATES: dict[Path, Template | None] = {}


def load_template(rel: str) -> Template | None:
    """The template at cloudformation/<rel>, or None when there is no such file."""
    path = (CFN_DIR / rel).resolve()
    if path not in _TEMPLATES:
        if CFN_DIR.resolve() not in path.parents or not path.is_file():
            _TEMPLATES[path] = None
        else:
            error = ""
            try:
                with open(path, encoding="utf-8") as f:
                    body = yaml.load(f, Loader=CfnLoader)  # noqa: S506 (a SafeLoader subclass)
            except (OSError, yaml.YAMLError) as e:
                body, error = {}, str(e).splitlines()[0]
            if not error and not isinstance(body, dict):
                error = "not a template (no mapping at the top)"
            _TEMPLATES[path] = Template(display(path), as_dict(body), error)
    return _TEMPLATES[path]


def template_from(root: str, reference: str, file: Path, path: str, problems: Problems, how: str):
    """The repository template a recipe names as ROOT + P, or None (with a problem)."""
    if not reference.startswith(root):
        problems.add(file, path, f"{reference!r} is not under {root}; {how}")
        return None
    rel = reference[len(root) :]
    template = load_template(rel) if rel and ".." not in Path(rel).parts else None
    if template is None:
        problems.add(
            file,
            path,
            f"{reference!r} names cloudformation/{rel}, which is not a file of this repository",
        )
    elif template.error:
        problems.add(file, path, f"{template.rel} cannot be read: {template.error}")
        return None
    return template


# ---------------------------------------------------------------------------------------------
# Parameters and capabilities


@dataclass
class Given:
    """A parameter value a recipe passes: the literal value, or None when only the tool knows it."""

    value: str | None
    path: str


def check_parameters(
    problems: Problems, file: Path, path: str, template: Template, given: dict[str, Given]
) -> None:
    params = template.parameters
    for name, item in given.items():
        spec = params.get(name)
        if not isinstance(spec, dict):
            problems.add(
                file,
                item.path,
                f"{name} is not a Parameter of {template.rel} (its Parameters: "
                f"{', '.join(params) or 'none'})",
            )
        elif item.value is not None:
            for message in value_problems(spec, item.value):
                problems.add(file, item.path, f"{name}={item.value!r}: {message}")
    for name, spec in params.items():
        if name not in given and not (isinstance(spec, dict) and "Default" in spec):
            problems.add(
                file, path, f"{template.rel} Parameter {name} has no Default and is not given"
            )
    check_rules(problems, file, path, template, given)


class Unknown(Exception):
    """A value only the tool or the account knows."""


def check_rules(
    problems: Problems, file: Path, path: str, template: Template, given: dict[str, Given]
) -> None:
    """The template's Rules (CloudFormation's parameter assertions, such as "CodeS3Bucket or
    CodeS3BucketPrefix"), evaluated with the values passed and the Defaults; a rule that reads a
    value only the tool knows is left to CloudFormation."""

    def value(name: str) -> str:
        if name in given:
            if given[name].value is None:
                raise Unknown(name)
            return given[name].value
        default = as_dict(template.parameters.get(name)).get("Default")
        if default is None:
            raise Unknown(name)
        return str(default).lower() if isinstance(default, bool) else str(default)

    def ev(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return value(arg)
            if fn == "Fn::Equals":
                return str(ev(arg[0])) == str(ev(arg[1]))
            if fn == "Fn::Not":
                return not ev(arg[0])
            if fn == "Fn::And":
                return all(ev(a) for a in arg)
            if fn == "Fn::Or":
                return any(ev(a) for a in arg)
            if fn == "Fn::Join":
                return arg[0].join(str(ev(a)) for a in arg[1])
            if fn == "Fn::Contains":
                return str(ev(arg[1])) in [str(ev(a)) for a in arg[0]]
            raise Unknown(fn)
        return node

    for rule_name, rule in as_dict(template.body.get("Rules")).items():
        try:
            if "RuleCondition" in rule and not ev(rule["RuleCondition"]):
                continue
            for assertion in as_list(as_dict(rule).get("Assertions")):
                if not ev(assertion.get("Assert")):
                    problems.add(
                        file,
                        path,
                        f"{template.rel} rule {rule_name}: "
                        f"{assertion.get('AssertDescription', 'an assertion fails')}",
                    )
        except Unknown:
            continue


def value_problems(spec: dict, value: str) -> list[str]:
    """What a literal value breaks of a Parameter's constraints (CloudFormation's Parameters)."""
    ptype = str(spec.get("Type", "String"))
    if ptype == "CommaDelimitedList":
        items, element = [v.strip() for v in value.split(",")], "String"
    elif ptype == "List<Number>":
        items, element = [v.strip() for v in value.split(",")], "Number"
    elif ptype in ("String", "Number"):
        items, element = [value], ptype
    else:
        return []  # AWS-specific and SSM parameter types: only the account can tell
    out = []
    if ptype == "String":
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            out.append(f"shorter than MinLength {spec['MinLength']}")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            out.append(f"longer than MaxLength {spec['MaxLength']}")
    for item in items:
        if element == "Number":
            try:
                number = float(item)
            except ValueError:
                out.append(f"{item!r} is not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                out.append(f"{item} is less than MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                out.append(f"{item} is more than MaxValue {spec['MaxValue']}")
        allowed = spec.get("AllowedValues")
        if isinstance(allowed, list) and not allowed_value(item, allowed, element):
            out.append(f"{item!r} is not in AllowedValues {[str(a) for a in allowed]}")
        pattern = spec.get("AllowedPattern")
        if isinstance(pattern, str) and element == "String":
            try:
                matched = re.fullmatch(pattern, item) is not None
            except re.error:
                matched = True  # a pattern Python cannot read: not judged here
            if not matched:
                out.append(f"{item!r} does not match AllowedPattern {pattern}")
    return out


def allowed_value(item: str, allowed: list, element: str) -> bool:
    if element == "Number":
        try:
            return any(float(item) == float(a) for a in allowed)
        except (TypeError, ValueError):
            return False
    return item in [str(a) if not isinstance(a, bool) else str(a).lower() for a in allowed]


def check_capabilities(
    problems: Problems, file: Path, path: str, template: Template, caps: list[str], what: str
) -> None:
    iam, named = template.iam_resources()
    if named and "CAPABILITY_NAMED_IAM" not in caps:
        problems.add(
            file,
            path,
            f"{template.rel} creates named IAM resources ({', '.join(named)}): {what} needs "
            "CAPABILITY_NAMED_IAM",
        )
    elif iam and not {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"} & set(caps):
        problems.add(
            file,
            path,
            f"{template.rel} creates IAM resources ({', '.join(iam)}): {what} needs "
            "CAPABILITY_IAM (or CAPABILITY_NAMED_IAM)",
        )
    if template.uses_macros() and "CAPABILITY_AUTO_EXPAND" not in caps:
        problems.add(
            file, path, f"{template.rel} uses a Transform: {what} needs CAPABILITY_AUTO_EXPAND"
        )


# ---------------------------------------------------------------------------------------------
# Order: the provider stack before the grant stack


@dataclass
class Deployment:
    """One stack or stack set of a recipe, as far as order and coverage go."""

    file: Path
    path: str
    name: str
    template: Template
    given: dict[str, Given]
    regions: frozenset
    targets: frozenset  # accounts and OUs (("ou", name), ("account", id)); AFT: this account
    excluded: frozenset = frozenset()
    before: set[str] = field(default_factory=set)  # what the tool finishes before this starts

    def covers(self, other: Deployment) -> bool:
        return (
            other.regions <= self.regions
            and other.targets <= self.targets
            and self.excluded <= other.excluded
        )


def check_order(problems: Problems, deployments: list[Deployment], how: str) -> int:
    """Every import of a deployment is exported by one that the tool completes first, on the same
    accounts and regions or more. `how` says how this tool orders, with {provider} in it."""
    exporters: dict[str, list[Deployment]] = {}
    for d in deployments:
        for export in d.template.exports(d.given):
            exporters.setdefault(export, []).append(d)
    checked = 0
    for d in deployments:
        for export in sorted(d.template.imports()):
            checked += 1
            providers = exporters.get(export, [])
            names = ", ".join(p.name for p in providers)
            if not providers:
                problems.add(
                    d.file,
                    d.path,
                    f"{d.template.rel} imports {export}, which no stack of this recipe exports "
                    "(cloudformation/vendor-grants.yaml does, with its ExportName default)",
                )
                continue
            earlier = [p for p in providers if p.name in d.before]
            if not earlier:
                problems.add(
                    d.file,
                    d.path,
                    f"{d.name} imports {export} from {names}, but nothing makes {names} finish "
                    f"first: {how.format(provider=providers[0].name)}",
                )
            elif not any(p.covers(d) for p in earlier):
                problems.add(
                    d.file,
                    d.path,
                    f"{d.name} imports {export} from {names}, which does not cover all of its "
                    "accounts and regions: give it the same targets and regions (or more)",
                )
    return checked


# ---------------------------------------------------------------------------------------------
# Loading recipes


def load_yaml(file: Path, problems: Problems) -> Any:
    try:
        with open(file, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as e:
        problems.add(file, "", f"cannot read: {e.strerror}")
    except yaml.YAMLError as e:
        problems.add(file, "", f"not YAML this checker reads: {e}")
    return None


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass
class Summary:
    recipe: str
    deployments: int = 0
    parameters: int = 0
    imports: int = 0


def finish(
    problems: Problems, summary: Summary, deployments: list[Deployment], how: str, caps
) -> Summary:
    """The checks every recipe shares, once its deployments are known."""
    for d in deployments:
        check_parameters(problems, d.file, d.path, d.template, d.given)
        check_capabilities(problems, d.file, d.path, d.template, caps(d), f"{d.name}")
        summary.parameters += len(d.given)
    summary.deployments = len(deployments)
    summary.imports = check_order(problems, deployments, how)
    return summary


def given_from_list(
    problems: Problems,
    file: Path,
    path: str,
    items: Any,
    fields: tuple[str, str],
    literal: Callable[[Any, str], str | None],
) -> dict[str, Given]:
    """Parameters given as a list of mappings, with the names of their key and value fields."""
    given: dict[str, Given] = {}
    for i, item in enumerate(as_list(items)):
        key, value = (as_dict(item).get(f) for f in fields)
        item_path = join_path(path, i)
        if not isinstance(key, str):
            continue  # the schema said so
        if key in given:
            problems.add(file, item_path, f"parameter {key} is given twice")
        given[key] = Given(literal(value, item_path), item_path)
    return given


def load_recipe(file: Path, schema: Node, problems: Problems) -> tuple[Summary, dict | None]:
    """A YAML recipe checked against its schema (None when it cannot be read at all)."""
    summary = Summary(display(file))
    data = load_yaml(file, problems)
    if data is None:
        return summary, None
    schema.check(data, "", lambda p, m: problems.add(file, p, m))
    return summary, as_dict(data)


# ---------------------------------------------------------------------------------------------
# CfCT


def check_cfct(manifest: Path, problems: Problems) -> Summary:
    summary, data = load_recipe(manifest, CFCT_SCHEMA, problems)
    if data is None:
        return summary
    home = data.get("region") if isinstance(data.get("region"), str) else None
    deployments: list[Deployment] = []
    seen: set[str] = set()
    for i, resource in enumerate(as_list(data.get("resources"))):
        path = join_path("resources", i)
        if not isinstance(resource, dict):
            continue
        name = resource.get("name")
        if resource.get("deploy_method") in ("scp", "rcp"):
            problems.add(
                manifest, join_path(path, "deploy_method"), "this recipe has stack sets only"
            )
        if resource.get("deploy_method") != "stack_set" or not isinstance(name, str):
            continue
        if name in seen:
            problems.add(manifest, join_path(path, "name"), f"{name} is the name of two resources")
        seen.add(name)
        template = cfct_template(manifest, path, resource, problems)
        given = cfct_parameters(manifest, path, resource, problems)
        targets = as_dict(resource.get("deployment_targets"))
        target_set = frozenset(
            [("ou", ou) for ou in as_list(targets.get("organizational_units"))]
            + [("account", str(a)) for a in as_list(targets.get("accounts"))]
        )
        for j, ou in enumerate(as_list(targets.get("organizational_units"))):
            if isinstance(ou, str) and "/" in ou:
                problems.add(
                    manifest,
                    join_path(join_path(path, "deployment_targets.organizational_units"), j),
                    f"{ou!r}: CfCT names a nested OU by its path without Root, separated by ':' "
                    "(Parent:Child)",
                )
        for j, account in enumerate(as_list(targets.get("accounts"))):
            if not isinstance(account, str):
                problems.add(
                    manifest,
                    join_path(join_path(path, "deployment_targets.accounts"), j),
                    "quote account ids: YAML reads an unquoted number, and loses leading zeros",
                )
        if not target_set:
            problems.add(
                manifest, join_path(path, "deployment_targets"), "no accounts or OUs to deploy to"
            )
        regions = [r for r in as_list(resource.get("regions")) if isinstance(r, str)] or [home]
        for j, export in enumerate(as_list(resource.get("export_outputs"))):
            value = as_dict(export).get("value")
            m = re.fullmatch(r"\$\[output_(\w+)\]", value) if isinstance(value, str) else None
            if template and m and m.group(1) not in (template.body.get("Outputs") or {}):
                problems.add(
                    manifest,
                    join_path(join_path(path, "export_outputs"), j),
                    f"{m.group(1)} is not an Output of {template.rel}",
                )
        if template is not None:
            before = {d.name for d in deployments}  # CfCT goes through them in order
            deployments.append(
                Deployment(
                    manifest,
                    path,
                    name,
                    template,
                    given,
                    frozenset(regions),
                    target_set,
                    before=before,
                )
            )
    if not deployments and not problems:
        problems.add(manifest, "resources", "no stack_set resources")
    how = "list {provider} before it (CfCT deploys stack_set resources one at a time, in order)"
    return finish(problems, summary, deployments, how, lambda d: CFCT_CAPABILITIES)


def cfct_template(manifest: Path, path: str, resource: dict, problems: Problems):
    reference = resource.get("resource_file")
    if not isinstance(reference, str):
        return None
    if re.match(r"(?i)(s3|https?)://", reference):
        problems.add(
            manifest,
            join_path(path, "resource_file"),
            f"{reference!r} is remote; name the local copy {CFCT_ROOT}P of cloudformation/P",
        )
        return None
    return template_from(
        CFCT_ROOT,
        reference,
        manifest,
        join_path(path, "resource_file"),
        problems,
        "templates/vendor-grants/P in the CfCT configuration is cloudformation/P here",
    )


def cfct_parameters(manifest: Path, path: str, resource: dict, problems: Problems):
    def literal(value: Any, item_path: str) -> str | None:
        if isinstance(value, bool):
            problems.add(manifest, item_path, "quote it: YAML reads it as a boolean")
            return None
        if value is None:
            problems.add(manifest, item_path, 'no parameter_value: write "" for an empty one')
            return None
        if isinstance(value, list):  # CfCT joins a list with commas
            value = ",".join(str(v) for v in value)
        text = str(value)
        # $[alfred_...] helpers are resolved by CfCT at deploy time.
        return None if "$[" in text else ",".join(v.strip() for v in text.split(","))

    if "parameters" in resource and "parameter_file" in resource:
        # manifest_parser.py reads parameters only when parameter_file is empty, and the file only
        # when parameters is empty: with both, the stack set gets no parameters at all.
        problems.add(manifest, path, "both parameters and parameter_file: CfCT would pass neither")
        return {}
    if isinstance(resource.get("parameter_file"), str):
        file = manifest.parent / resource["parameter_file"]
        try:
            items = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems.add(manifest, join_path(path, "parameter_file"), f"cannot read {file}: {e}")
            return {}
        return given_from_list(
            problems, file, "", items, ("ParameterKey", "ParameterValue"), literal
        )
    return given_from_list(
        problems,
        manifest,
        join_path(path, "parameters"),
        resource.get("parameters"),
        ("parameter_key", "parameter_value"),
        literal,
    )


# ---------------------------------------------------------------------------------------------
# LZA


def check_lza(config: Path, problems: Problems) -> Summary:
    summary, data = load_recipe(config, LZA_SCHEMA, problems)
    if data is None:
        return summary
    base = "customizations.cloudFormationStackSets"
    stack_sets = as_list(as_dict(data.get("customizations")).get("cloudFormationStackSets"))
    by_name: dict[str, dict] = {}
    for i, s in enumerate(stack_sets):
        name = as_dict(s).get("name")
        if isinstance(name, str):
            if name in by_name:
                problems.add(config, join_path(join_path(base, i), "name"), f"{name} is used twice")
            by_name[name] = s
    deployments: list[Deployment] = []
    for i, s in enumerate(stack_sets):
        path = join_path(base, i)
        name = as_dict(s).get("name")
        if not isinstance(s, dict) or not isinstance(name, str):
            continue
        if not re.fullmatch(STACK_NAME, name):
            problems.add(
                config,
                join_path(path, "name"),
                f"{name!r} is LZA's StackSetName: a letter, then letters, digits and -, <= 128",
            )
        lza_preferences(config, path, as_dict(s.get("operationPreferences")), problems)
        before = lza_depends(config, path, name, by_name, problems)
        template = None
        if isinstance(s.get("template"), str):
            template = template_from(
                LZA_ROOT,
                s["template"],
                config,
                join_path(path, "template"),
                problems,
                "vendor-grants/P in the LZA configuration is cloudformation/P here",
            )

        def literal(value: Any, item_path: str) -> str | None:
            # {{ ... }} is a replacement LZA fills in from replacements-config.yaml.
            return value if isinstance(value, str) and "{{" not in value else None

        given = given_from_list(
            problems,
            config,
            join_path(path, "parameters"),
            s.get("parameters"),
            ("name", "value"),
            literal,
        )
        targets = as_dict(s.get("deploymentTargets"))
        for j, ou in enumerate(as_list(targets.get("organizationalUnits"))):
            if isinstance(ou, str) and ":" in ou:
                problems.add(
                    config,
                    join_path(join_path(path, "deploymentTargets.organizationalUnits"), j),
                    f"{ou!r}: LZA names a nested OU as organization-config.yaml does, "
                    "Parent/Child",
                )
        target_set = frozenset(
            [("ou", ou) for ou in as_list(targets.get("organizationalUnits"))]
            + [("account", a) for a in as_list(targets.get("accounts"))]
        )
        if not target_set:
            problems.add(config, join_path(path, "deploymentTargets"), "no accounts or OUs")
        # LZA gives a stack set its regions as written: CustomizationsStack.deployCustomStackSets
        # (source/packages/@aws-accelerator/accelerator/lib/stacks/customizations-stack.ts) passes
        # stackSet.regions and resolves deploymentTargets to accounts only, so excludedRegions,
        # which other LZA resources honour, does nothing here.
        regions = set(as_list(s.get("regions")))
        if "excludedRegions" in targets:
            problems.add(
                config,
                join_path(path, "deploymentTargets.excludedRegions"),
                "LZA ignores excludedRegions for cloudFormationStackSets (it deploys to regions as "
                "written): take the region out of regions instead",
            )
        if not regions:
            problems.add(config, join_path(path, "regions"), "no regions to deploy to")
        excluded = frozenset(("account", a) for a in as_list(targets.get("excludedAccounts")))
        if template is not None:
            deployments.append(
                Deployment(
                    config,
                    path,
                    name,
                    template,
                    given,
                    frozenset(regions),
                    target_set,
                    excluded=excluded,
                    before=before,
                )
            )
    if not deployments and not problems:
        problems.add(config, base, "no stack sets")
    lza_exporters_tolerate_nothing(config, deployments, by_name, problems)
    how = "add {provider} to its dependsOn"
    return finish(
        problems,
        summary,
        deployments,
        how,
        lambda d: [c for c in as_list(by_name[d.name].get("capabilities")) if isinstance(c, str)],
    )


def lza_exporters_tolerate_nothing(
    config: Path, deployments: list[Deployment], by_name: dict, problems: Problems
) -> None:
    """A stack set whose export another one imports may fail nowhere: with a failure tolerance
    the operation succeeds although some accounts have no provider, CloudFormation then starts
    the stack sets that depend on it, and their stacks fail on the import in exactly those
    accounts. Tolerance 0 (failureTolerancePercentage or failureToleranceCount, or neither) stops
    the dependent stack sets instead."""
    imported = {e for d in deployments for e in d.template.imports()}
    for i, d in enumerate(deployments):
        if not d.template.exports(d.given) & imported:
            continue
        prefs = as_dict(by_name[d.name].get("operationPreferences"))
        for key in ("failureTolerancePercentage", "failureToleranceCount"):
            if prefs.get(key, 0) not in (0, None):
                problems.add(
                    config,
                    join_path(d.path, f"operationPreferences.{key}"),
                    f"{d.name} exports what other stack sets import: with {key} "
                    f"{prefs[key]} the stack sets that depend on it still deploy where it failed "
                    "and fail on the import; set it to 0",
                )


def lza_preferences(config: Path, path: str, prefs: dict, problems: Problems) -> None:
    # "Cannot be used with ..." in each of these properties' descriptions.
    for count, percentage in (
        ("failureToleranceCount", "failureTolerancePercentage"),
        ("maxConcurrentCount", "maxConcurrentPercentage"),
    ):
        if count in prefs and percentage in prefs:
            problems.add(
                config,
                join_path(path, "operationPreferences"),
                f"{count} cannot be used with {percentage}",
            )


def lza_depends(config: Path, path: str, name: str, by_name: dict, problems: Problems) -> set:
    """Every stack set this one depends on, directly or not (as LZA's validator, which refuses
    unknown names and cycles)."""
    done: set[str] = set()
    todo = [(name, d) for d in as_list(by_name[name].get("dependsOn"))]
    while todo:
        parent, dep = todo.pop()
        if dep == name:
            problems.add(config, join_path(path, "dependsOn"), f"{name} depends on itself")
            continue
        if dep in done:
            continue
        if dep not in by_name:
            problems.add(
                config,
                join_path(path, "dependsOn"),
                f"{parent} depends on {dep!r}, which is not a stack set of this file",
            )
            continue
        done.add(dep)
        todo += [(dep, d) for d in as_list(by_name[dep].get("dependsOn"))]
    return done


# ---------------------------------------------------------------------------------------------
# AFT


def load_hcl(file: Path, problems: Problems) -> dict:
    import hcl2  # bc-python-hcl2, the python-hcl2 fork that checkov depends on

    if not getattr(hcl2, "__version__", "").startswith("0.4."):
        problems.add(file, "", f"written for bc-python-hcl2 0.4.x, found hcl2 {hcl2.__version__}")
        return {}
    try:
        return hcl2.loads(file.read_text(encoding="utf-8"))
    except Exception as e:  # lark's errors have no common base worth naming
        problems.add(file, "", f"not HCL this checker reads: {str(e).splitlines()[0]}")
        return {}


def unwrap(value: Any) -> Any:
    """bc-python-hcl2 wraps each attribute's value in a one-element list."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


class AftStack:
    """One aws_cloudformation_stack block, with its locals for literal values."""

    def __init__(self, file: Path, name: str, body: dict, local: dict[str, str]):
        self.file, self.name, self.local = file, name, local
        self.path = f"resource.aws_cloudformation_stack.{name}"
        self.args = {k: unwrap(v) for k, v in body.items() if not k.startswith("__")}

    def literal(self, value: Any) -> str | None:
        """A value as Terraform passes it, with ${local.NAME} of literal locals filled in, or
        None when it depends on anything else."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            return None
        text = re.sub(
            r"\$\{local\.(\w+)\}", lambda m: self.local.get(m.group(1), m.group(0)), value
        )
        return None if "${" in text else text

    def references(self) -> set[str]:
        """The aws_cloudformation_stack resources this one refers to (depends_on included)."""
        return set(re.findall(r"aws_cloudformation_stack\.(\w+)", json.dumps(self.args)))

    def regions_key(self, stacks: dict[str, AftStack], seen: frozenset = frozenset()) -> str:
        """Which regions the instances go to: stacks with equal keys share their regions."""
        for_each = self.args.get("for_each")
        m = re.fullmatch(r"\$\{aws_cloudformation_stack\.(\w+)\}", str(for_each))
        if m and m.group(1) in stacks and m.group(1) not in seen | {self.name}:
            return stacks[m.group(1)].regions_key(stacks, seen | {self.name})
        if for_each is not None:
            return f"for_each {for_each}"
        return f"region {self.args.get('region', '(the provider region)')}"


def check_aft(terraform_dir: Path, problems: Problems) -> Summary:
    summary = Summary(display(terraform_dir))
    files = sorted(terraform_dir.glob("*.tf"))
    if not files:
        problems.add(terraform_dir, "", "no .tf files")
        return summary
    parsed = [(f, load_hcl(f, problems)) for f in files]
    local: dict[str, str] = {}
    for _, data in parsed:
        for block in as_list(data.get("locals")):
            for key, value in block.items():
                if isinstance(unwrap(value), str) and "${" not in unwrap(value):
                    local[key] = unwrap(value)
    for f, data in parsed:
        aft_provider_constraint(f, data, problems)
    stacks: dict[str, AftStack] = {}
    for f, data in parsed:
        for block in as_list(data.get("resource")):
            for name, body in as_dict(as_dict(block).get("aws_cloudformation_stack")).items():
                stacks[name] = AftStack(f, name, body, local)
    deployments = []
    for stack in stacks.values():
        template = aft_stack(stack, problems)
        if template is None:
            continue
        given = {}
        parameters = stack.args.get("parameters", {})
        if not isinstance(parameters, dict):
            problems.add(stack.file, f"{stack.path}.parameters", "expected a map of strings")
            parameters = {}
        for key, value in parameters.items():
            item_path = f"{stack.path}.parameters.{key}"
            if isinstance(value, (list, dict)):
                problems.add(
                    stack.file, item_path, "parameter values are strings: join a list with ','"
                )
            given[key] = Given(stack.literal(value), item_path)
        before: set[str] = set()
        todo = list(stack.references())
        while todo:
            name = todo.pop()
            if name in stacks and name not in before:
                before.add(name)
                todo += stacks[name].references()
        if stack.name in before:
            before.discard(stack.name)
            problems.add(stack.file, stack.path, "refers to itself through other stacks (a cycle)")
        deployments.append(
            Deployment(
                stack.file,
                stack.path,
                stack.name,
                template,
                given,
                frozenset([stack.regions_key(stacks)]),
                frozenset([("account", "the vended account")]),
                before=before,
            )
        )
    if not deployments and not problems:
        problems.add(terraform_dir, "", "no aws_cloudformation_stack resources")
    how = "add aws_cloudformation_stack.{provider} to its depends_on"
    caps_of = {
        name: [c for c in as_list(s.args.get("capabilities")) if isinstance(c, str)]
        for name, s in stacks.items()
    }
    return finish(problems, summary, deployments, how, lambda d: caps_of[d.name])


def aft_provider_constraint(file: Path, data: dict, problems: Problems) -> None:
    """The AWS provider's version constraint needs an upper bound: AFT runs `terraform init` on
    every customization run and keeps no lock file, so a constraint without one takes the newest
    major version the day it is published."""
    for block in as_list(data.get("terraform")):
        for providers in as_list(as_dict(block).get("required_providers")):
            aws = as_dict(unwrap(as_dict(providers).get("aws")))
            version = aws.get("version")
            if version is None:
                continue
            path = "terraform.required_providers.aws.version"
            bounded = isinstance(version, str) and (
                "<" in version
                or re.search(r"~>\s*\d+\.\d+", version) is not None
                or re.fullmatch(r"=?\s*\d+(\.\d+)*", version.strip()) is not None
            )
            if not bounded:
                problems.add(
                    file,
                    path,
                    f"{version!r} has no upper bound and AFT keeps no lock file: the next major "
                    "version would be taken unreviewed; write ~> 6.0 (6.x only)",
                )


def aft_stack(stack: AftStack, problems: Problems) -> Template | None:
    """The shape of one aws_cloudformation_stack; its template, or None."""
    args, file, path = stack.args, stack.file, stack.path
    for key in args:
        if key not in TF_STACK_ARGUMENTS | TF_META_ARGUMENTS:
            problems.add(
                file,
                f"{path}.{key}",
                f"unknown argument {key!r} of aws_cloudformation_stack; valid: "
                f"{', '.join(sorted(TF_STACK_ARGUMENTS | TF_META_ARGUMENTS))}",
            )
    name = stack.literal(args.get("name")) if "name" in args else None
    if "name" not in args:
        problems.add(file, path, "missing required argument 'name'")
    elif name is not None and not re.fullmatch(STACK_NAME, name):
        problems.add(
            file, f"{path}.name", f"{name!r}: a letter, then letters, digits and -, at most 128"
        )
    if "for_each" in args and "region" not in args and name is not None:
        problems.add(
            file,
            f"{path}.name",
            "with for_each and no region argument every instance is the same stack name in the "
            "same region",
        )
    region = stack.literal(args.get("region")) if "region" in args else None
    if region is not None and not re.fullmatch(REGION, region):
        problems.add(file, f"{path}.region", f"{region!r} is not a region name")
    capabilities = args.get("capabilities", [])
    if not isinstance(capabilities, list):
        problems.add(file, f"{path}.capabilities", "expected a list")
    for i, cap in enumerate(as_list(capabilities)):
        if cap not in CAPABILITIES:
            problems.add(
                file,
                f"{path}.capabilities[{i}]",
                f"{cap!r} is not one of {', '.join(CAPABILITIES)}",
            )
    if "on_failure" in args:
        if args["on_failure"] not in TF_ON_FAILURE:
            problems.add(
                file,
                f"{path}.on_failure",
                f"{args['on_failure']!r} is not one of {', '.join(TF_ON_FAILURE)}",
            )
        if "disable_rollback" in args:
            problems.add(file, f"{path}.on_failure", "conflicts with disable_rollback")
    if "policy_body" in args and "policy_url" in args:
        problems.add(file, f"{path}.policy_url", "conflicts with policy_body")
    sources = [k for k in ("template_url", "template_body") if k in args]
    if len(sources) != 1:
        problems.add(file, path, "give exactly one of template_url and template_body")
        return None
    source, where = str(args[sources[0]]), f"{path}.{sources[0]}"
    if sources[0] == "template_url":
        root, how = AFT_URL_ROOT, "end the URL with ${local.template_prefix}/P: cloudformation/P"
        # Whatever comes before the prefix (bucket, region) may be any expression.
        reference = root + source.partition(root)[2] if root in source else source
    else:
        root, how = AFT_BODY_ROOT, f'use file("{AFT_BODY_ROOT}P"), a copy of cloudformation/P'
        m = re.fullmatch(r'\$\{file\("(.*)"\)\}', source)
        reference = m.group(1) if m else source
    if reference.startswith(root) and "${" in reference[len(root) :]:
        problems.add(file, where, f"the template's path after {root} must be literal")
        return None
    return template_from(root, reference, file, where, problems, how)


# ---------------------------------------------------------------------------------------------


def run(cfct: Path | None, lza: Path | None, aft: Path | None) -> tuple[Problems, list[Summary]]:
    problems = Problems()
    summaries = []
    if cfct is not None:
        summaries.append(check_cfct(cfct, problems))
    if lza is not None:
        summaries.append(check_lza(lza, problems))
    if aft is not None:
        summaries.append(check_aft(aft, problems))
    return problems, summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cfct", type=Path, help="a CfCT manifest.yaml")
    parser.add_argument("--lza", type=Path, help="an LZA customizations-config.yaml")
    parser.add_argument("--aft", type=Path, help="an AFT customization's terraform/ folder")
    args = parser.parse_args(argv)
    if args.cfct is None and args.lza is None and args.aft is None:
        args.cfct, args.lza, args.aft = CFCT_MANIFEST, LZA_CONFIG, AFT_TERRAFORM
    problems, summaries = run(args.cfct, args.lza, args.aft)
    if problems:
        print("\n".join(problems.lines()))
        return 1
    templates = len([t for t in _TEMPLATES.values() if t is not None])
    print(
        "account-vending recipes OK: "
        + "; ".join(f"{s.recipe} ({s.deployments} stacks)" for s in summaries)
        + f"; {templates} templates, {sum(s.parameters for s in summaries)} parameters, "
        f"{sum(s.imports for s in summaries)} imports ordered after their export"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
