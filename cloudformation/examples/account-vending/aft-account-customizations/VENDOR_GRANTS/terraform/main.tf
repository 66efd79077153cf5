# Account Factory for Terraform (AFT) account customization VENDOR_GRANTS: vendor-grants in this
# account, then a TELUS International grant on the account's existing data bucket, as two
# CloudFormation stacks per region. An account gets it with
# account_customizations_name = "VENDOR_GRANTS" in its account request, and names its buckets in
# the custom field telus_data (below). See ../../../README.md.
#
# Layout (AFT's documented one): copy AFT's ACCOUNT_TEMPLATE folder, of your AFT version, to
# VENDOR_GRANTS/ in your aft-account-customizations repository and add this file to its terraform/.
# ACCOUNT_TEMPLATE brings terraform/aft-providers.jinja and backend.jinja, which AFT renders into the
# provider (assuming AWSAFTExecution in the vended account, in the Control Tower home region) and
# the state backend, and api_helpers/ (pre- and post-api-helpers.sh, python/requirements.txt),
# which AFT's build runs and installs: without them the customization fails, and without
# aft-providers.jinja Terraform would run in the AFT management account instead.
#
# Templates. CloudFormation reads template_url with the caller's credentials, i.e. as the vended
# account. Each region's code bucket (<code_bucket_prefix>-<region>, readable by every account of
# the organization through its aws:PrincipalOrgID bucket policy) holds, under template_prefix, a
# copy of the templates named here at the same paths they have under cloudformation/ in this
# repository:
#   <template_prefix>/vendor-grants.yaml                    <- cloudformation/vendor-grants.yaml
#   <template_prefix>/examples/grant-existing-bucket.yaml   <- cloudformation/examples/grant-existing-bucket.yaml
# tools/check_account_vending.py checks these stacks against those files.
#
# ORDER. The grant's stacks iterate over the vendor-grants stacks (and depend on them), so Terraform
# creates vendor-grants (which exports vendor-grants-ServiceToken) before the grant (which imports
# it) in each region, and destroys them the other way round, so the grant's Delete still finds the
# function. A provider stack that fails to create fails the apply before any grant of that region.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x only: the resource-level region argument below needs 6.0, and AFT runs terraform init
      # on every run without a lock file, so an open ">= 6.0.0" would take 7.0 the day it ships.
      version = "~> 6.0"
    }
  }
}

locals {
  # The regions of this account that get vendor-grants and the grant.
  regions = ["us-east-1", "eu-west-1"]

  # Per region, the bucket <code_bucket_prefix>-<region> holds the zip and the templates. Lambda
  # takes code only from a bucket in the function's own region; the deploy template's
  # CodeS3BucketPrefix makes the same name.
  code_bucket_prefix = "my-org-vendor-grants"
  # The zip (make package) in each of those buckets. A new key per release.
  code_key = "vendor-grants/0.1.0/vendor-grants-lambda-x86_64.zip"
  # Where the templates are in each of those buckets.
  template_prefix = "vendor-grants/0.1.0/cloudformation"

  # This account's data buckets and keys, per region, from the account request's custom field
  # telus_data, e.g.
  #   custom_fields = {
  #     telus_data = jsonencode({
  #       "us-east-1" = { bucket = "acme-data-111122223333-use1", key = "arn:aws:kms:us-east-1:111122223333:key/..." }
  #       "eu-west-1" = { bucket = "acme-data-111122223333-euw1", key = "" }
  #     })
  #   }
  telus_data = jsondecode(data.aws_ssm_parameter.telus_data.value)
}

# AFT writes each custom field of the account request to SSM in the vended account, under
# /aft/account-request/custom-fields/ (AWS Control Tower User Guide, "Update an existing account").
data "aws_ssm_parameter" "telus_data" {
  name = "/aft/account-request/custom-fields/telus_data"
}

# 1. The provider: the function behind Custom::VendorGrant. Its export vendor-grants-ServiceToken
#    (the template's ExportName default) is what every grant's ServiceToken imports.
resource "aws_cloudformation_stack" "vendor_grants" {
  for_each = toset(local.regions)
  region   = each.key
  name     = "vendor-grants"

  template_url = "https://${local.code_bucket_prefix}-${each.key}.s3.${each.key}.amazonaws.com/${local.template_prefix}/vendor-grants.yaml"

  # The template creates the function's IAM role (generated name): CAPABILITY_IAM.
  capabilities = ["CAPABILITY_IAM"]

  parameters = {
    CodeS3BucketPrefix = local.code_bucket_prefix
    CodeS3Key          = local.code_key
    Architecture       = "x86_64"
    # The vendors a grant in this account may name (comma-separated).
    AllowedVendors = "telus"
    # The daily audit of every grant in the account (findings logged, metrics in VendorGrants).
    AuditSchedule = "rate(1 day)"
  }
}

# 2. The grant: cloudformation/examples/grant-existing-bucket.yaml unchanged, TELUS's statements
#    on this account's existing bucket (and key) of each region. No IAM resource, so no capability.
resource "aws_cloudformation_stack" "telus_grant" {
  for_each = aws_cloudformation_stack.vendor_grants
  region   = each.key
  name     = "telus-grant"

  template_url = "https://${local.code_bucket_prefix}-${each.key}.s3.${each.key}.amazonaws.com/${local.template_prefix}/examples/grant-existing-bucket.yaml"

  parameters = {
    Vendor     = "telus"
    BucketName = local.telus_data[each.key].bucket
    KmsKeyArn  = local.telus_data[each.key].key
    Prefix     = "telus/"
  }

  depends_on = [aws_cloudformation_stack.vendor_grants]
}
