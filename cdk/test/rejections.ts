/**
 * The one table of synth-time rejections: test/validation.test.ts asserts the construct throws
 * each message exactly, and writes (or compares) test/contract/rejections.json from the rows that
 * mirror a function rule, with the Properties the construct would have emitted. The Rust side
 * runs those Properties through the real function and asserts its error contains the message.
 */
import { Duration, Fn, Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';

import { Access, GrantMode, Vendor, VendorGrantProps, VendorGrantsProvider, VendorGrantsProviderProps } from '../src';
import { newStack } from './helpers';

export const VENDOR_ROLE = 'arn:aws:iam::123456789012:role/vendor-role';
export const VENDOR_ROLE_SECONDARY = 'arn:aws:iam::123456789012:role/vendor-role-secondary';
export const EXTERNAL_ID = 'test-external-id';
export const KEY_ARN = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
export const BUCKET = 'contract-data';

/** A grant's props without the constructs: the bucket and key by name and ARN (literals). */
export interface GrantInput extends Omit<VendorGrantProps, 'bucket' | 'key' | 'provider' | 'serviceToken'> {
  readonly bucketName?: string;
  readonly keyArn?: string;
}

export interface RejectionCase {
  readonly name: string;
  readonly grant: GrantInput;
  /** The exact message the construct throws (and, for function rules, a part of the function's). */
  readonly message: string;
  /** Whether the rule mirrors one of the function's (then the row is in rejections.json). */
  readonly mirrorsFunction: boolean;
  /** CDK-only rows: the grant uses a provider with these props. */
  readonly provider?: VendorGrantsProviderProps;
  /** CDK-only rows: give both provider and serviceToken, or neither. */
  readonly serviceToken?: 'both' | 'neither';
}

/** The stack and the VendorGrant props a case describes. */
export function build(c: RejectionCase): { stack: Stack; props: VendorGrantProps } {
  const stack = newStack();
  const { bucketName, keyArn, ...rest } = c.grant;
  const bucket = s3.Bucket.fromBucketName(stack, 'Bucket', bucketName ?? BUCKET);
  const key = keyArn === undefined ? undefined : kms.Key.fromKeyArn(stack, 'Key', keyArn);
  const provider =
    c.provider !== undefined || c.serviceToken !== undefined
      ? new VendorGrantsProvider(stack, 'Provider', c.provider ?? {})
      : undefined;
  const serviceToken = Fn.importValue('vendor-grants-ServiceToken');
  let connection: Pick<VendorGrantProps, 'provider' | 'serviceToken'>;
  if (c.serviceToken === 'both') connection = { provider, serviceToken };
  else if (c.serviceToken === 'neither') connection = {};
  else if (provider !== undefined) connection = { provider };
  else connection = { serviceToken };
  return { stack, props: { ...rest, bucket, key, ...connection } };
}

const fixed = (vendor: string, principal: string, value: string) =>
  `VendorPrincipal ${JSON.stringify(value)} is not valid; expected vendor ${vendor}'s principal is fixed (${principal}); remove VendorPrincipal or use Vendor: custom`;
const GUIDE_NAMES: Record<string, string> = {
  vcc: "VCC Interaction Content Export's guide names roles: arn:aws:iam::ACCOUNT:role/NAME (its {primary-service} and {secondary-service}) (https://docs-vcc.atlassian.net/wiki/pages/diffpages.action?originalId=4355227756&pageId=4356046859)",
  alphasense:
    "AlphaSense's guide names a role: arn:aws:iam::ACCOUNT:role/NAME (https://dev-developer.alpha-sense.com/enterprise/how-to/client-data-encryption/bring-your-own-bucket)",
  custom: 'Vendor custom takes an account id or an IAM ARN',
};
const principalRequired = (vendor: string) =>
  `property VendorPrincipal is required: vendor ${vendor} gives each customer its principal, or a list of them: ${GUIDE_NAMES[vendor]}`;
const principalKind = (vendor: string, value: string, found: string) =>
  `VendorPrincipal ${JSON.stringify(value)} is ${found}, but ${GUIDE_NAMES[vendor]}; give that instead`;
const BLANK_PREFIX =
  'a key prefix such as "exports/"; a blank Prefix is refused, never read as the whole bucket: to grant the whole bucket, omit Prefix';
const externalIdRequired = (vendor: string) =>
  `property ExternalId is required: role mode for vendor ${vendor} needs the external id the vendor gave you`;
const externalIdInvalid = (length: number) =>
  `ExternalId is not valid (${length} characters): it must be 2 to 1224 characters of letters, digits and _+=,.@:/-`;
const accessRequired = (vendor: string) =>
  `property Access is required: vendor ${vendor} has no default access; give read, write, read-write or full`;
const prefixInvalid = (debugValue: string, reason: string) => `Prefix ${debugValue} is not valid: ${reason}`;
const SHAPES =
  'expected arn:PARTITION:iam::ACCOUNT:root, :role/NAME, :user/NAME or arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION';
const principalInvalid = (value: string, reason: string) =>
  `VendorPrincipal ${JSON.stringify(value)} is not a valid principal: ${reason}`;

/** A custom role-mode grant without a key: the function checks its principals before any AWS call. */
const customRole = (principal: string): GrantInput => ({
  vendor: Vendor.CUSTOM,
  mode: GrantMode.ROLE,
  access: Access.READ,
  externalId: EXTERNAL_ID,
  vendorPrincipals: [principal],
});

const longPrefix = 'p'.repeat(1025);
const manyPrincipals = Array.from({ length: 21 }, (_, i) => `1234567890${String(i + 10).padStart(2, '0')}`);

export const REJECTIONS: readonly RejectionCase[] = [
  // --- Rules of the function (src/grant/properties.rs, src/policy/lint.rs) ---
  // Issue 20: a blank Prefix is refused, never read as the whole bucket.
  {
    name: 'prefix-empty',
    grant: { vendor: Vendor.TELUS, prefix: '' },
    message: `Prefix "" is not valid; expected ${BLANK_PREFIX}`,
    mirrorsFunction: true,
  },
  {
    name: 'prefix-blank',
    grant: { vendor: Vendor.TELUS, prefix: '  ' },
    message: `Prefix "  " is not valid; expected ${BLANK_PREFIX}`,
    mirrorsFunction: true,
  },
  // Issue 20: a VendorPrincipal of another kind than the vendor's guide names.
  {
    name: 'vcc-role-account',
    grant: { vendor: Vendor.VCC, mode: GrantMode.ROLE, vendorPrincipals: ['444455556666'] },
    message: principalKind('vcc', '444455556666', 'a whole account'),
    mirrorsFunction: true,
  },
  {
    name: 'vcc-bucket-policy-account-root',
    grant: { vendor: Vendor.VCC, mode: GrantMode.BUCKET_POLICY, vendorPrincipals: [VENDOR_ROLE, 'arn:aws:iam::444455556666:root'] },
    message: principalKind('vcc', 'arn:aws:iam::444455556666:root', 'a whole account'),
    mirrorsFunction: true,
  },
  {
    name: 'alphasense-account',
    grant: { vendor: Vendor.ALPHASENSE, keyArn: KEY_ARN, vendorPrincipals: ['444455556666'] },
    message: principalKind('alphasense', '444455556666', 'a whole account'),
    mirrorsFunction: true,
  },
  {
    name: 'alphasense-user',
    grant: { vendor: Vendor.ALPHASENSE, keyArn: KEY_ARN, vendorPrincipals: ['arn:aws:iam::444455556666:user/as'] },
    message: principalKind('alphasense', 'arn:aws:iam::444455556666:user/as', 'a user'),
    mirrorsFunction: true,
  },
  {
    name: 'vendor-not-in-catalog',
    grant: { vendor: 'acme' as Vendor },
    message: 'Vendor "acme" is not valid; expected one of: telus, scale-ai, vcc, alphasense, custom',
    mirrorsFunction: true,
  },
  {
    name: 'bucket-name-not-lowercase',
    grant: { vendor: Vendor.TELUS, bucketName: 'Contract_Data' },
    message: 'BucketName "Contract_Data" is not valid; expected a bucket name that has only lowercase letters, digits, dots and hyphens',
    mirrorsFunction: true,
  },
  {
    name: 'kms-key-arn-invalid',
    grant: { vendor: Vendor.TELUS, keyArn: 'arn:aws:kms:us-east-1:123456789012:key/not_a_key_id' },
    message:
      'KmsKeyArn "arn:aws:kms:us-east-1:123456789012:key/not_a_key_id" is not valid; expected a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME), a key id or alias/NAME',
    mirrorsFunction: true,
  },
  {
    name: 'telus-role-mode',
    grant: { vendor: Vendor.TELUS, mode: GrantMode.ROLE },
    message: 'Mode "role" is not valid; expected vendor telus supports only: bucket-policy',
    mirrorsFunction: true,
  },
  {
    name: 'custom-without-access',
    grant: { vendor: Vendor.CUSTOM, vendorPrincipals: [VENDOR_ROLE] },
    message: accessRequired('custom'),
    mirrorsFunction: true,
  },
  {
    name: 'custom-role-without-access',
    grant: { vendor: Vendor.CUSTOM, mode: GrantMode.ROLE, externalId: EXTERNAL_ID, vendorPrincipals: [VENDOR_ROLE] },
    message: accessRequired('custom'),
    mirrorsFunction: true,
  },
  {
    name: 'custom-without-principals-or-access',
    grant: { vendor: Vendor.CUSTOM },
    message: accessRequired('custom'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-wildcard-star',
    grant: { vendor: Vendor.TELUS, prefix: 'data/*' },
    message: prefixInvalid('"data/*"', '`*` and `?` are wildcards in a policy; give the literal prefix (vendor-grants adds the `*`)'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-wildcard-question-mark',
    grant: { vendor: Vendor.TELUS, prefix: 'data?/' },
    message: prefixInvalid('"data?/"', '`*` and `?` are wildcards in a policy; give the literal prefix (vendor-grants adds the `*`)'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-policy-variable',
    grant: { vendor: Vendor.TELUS, prefix: '${aws:username}/' },
    message: prefixInvalid('"${aws:username}/"', '`${` starts a policy variable'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-dot-dot-segment',
    grant: { vendor: Vendor.TELUS, prefix: 'data/../other/' },
    message: prefixInvalid('"data/../other/"', '`..` segments are not allowed (S3 keys are literal)'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-leading-slash',
    grant: { vendor: Vendor.TELUS, prefix: '/data/' },
    message: prefixInvalid('"/data/"', 'S3 object keys do not start with `/`; write "data/"'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-double-quote',
    grant: { vendor: Vendor.TELUS, prefix: 'data"x/' },
    message: prefixInvalid('"data\\"x/"', 'quotes are not allowed'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-single-quote',
    grant: { vendor: Vendor.TELUS, prefix: "data'x/" },
    message: prefixInvalid('"data\'x/"', 'quotes are not allowed'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-control-character',
    grant: { vendor: Vendor.TELUS, prefix: 'data\tx/' },
    message: prefixInvalid('"data\\tx/"', 'control characters are not allowed'),
    mirrorsFunction: true,
  },
  {
    name: 'prefix-too-long',
    grant: { vendor: Vendor.TELUS, prefix: longPrefix },
    message: prefixInvalid(`"${longPrefix}"`, 'it is longer than an S3 key may be (1024 bytes)'),
    mirrorsFunction: true,
  },
  {
    name: 'vcc-without-principals',
    grant: { vendor: Vendor.VCC },
    message: principalRequired('vcc'),
    mirrorsFunction: true,
  },
  {
    name: 'vcc-bucket-policy-without-principals',
    grant: { vendor: Vendor.VCC, mode: GrantMode.BUCKET_POLICY },
    message: principalRequired('vcc'),
    mirrorsFunction: true,
  },
  {
    name: 'alphasense-without-principals',
    grant: { vendor: Vendor.ALPHASENSE, keyArn: KEY_ARN },
    message: principalRequired('alphasense'),
    mirrorsFunction: true,
  },
  {
    name: 'custom-without-principals',
    grant: { vendor: Vendor.CUSTOM, access: Access.READ },
    message: principalRequired('custom'),
    mirrorsFunction: true,
  },
  {
    name: 'custom-empty-principal-list',
    grant: { vendor: Vendor.CUSTOM, access: Access.READ, vendorPrincipals: [] },
    message: principalRequired('custom'),
    mirrorsFunction: true,
  },
  {
    name: 'telus-with-principal',
    grant: { vendor: Vendor.TELUS, vendorPrincipals: [VENDOR_ROLE] },
    message: fixed('telus', '475757276268', VENDOR_ROLE),
    mirrorsFunction: true,
  },
  {
    name: 'scale-ai-with-principals',
    grant: { vendor: Vendor.SCALE_AI, externalId: EXTERNAL_ID, vendorPrincipals: [VENDOR_ROLE, VENDOR_ROLE_SECONDARY] },
    message: fixed('scale-ai', '307185671274', `${VENDOR_ROLE},${VENDOR_ROLE_SECONDARY}`),
    mirrorsFunction: true,
  },
  {
    name: 'more-than-20-principals',
    grant: { vendor: Vendor.CUSTOM, access: Access.READ, vendorPrincipals: manyPrincipals },
    message: 'VendorPrincipal "21 principals" is not valid; expected at most 20 principals',
    mirrorsFunction: true,
  },
  {
    name: 'scale-ai-role-without-external-id',
    grant: { vendor: Vendor.SCALE_AI },
    message: externalIdRequired('scale-ai'),
    mirrorsFunction: true,
  },
  {
    name: 'alphasense-role-without-external-id',
    grant: { vendor: Vendor.ALPHASENSE, mode: GrantMode.ROLE, keyArn: KEY_ARN, vendorPrincipals: [VENDOR_ROLE] },
    message: externalIdRequired('alphasense'),
    mirrorsFunction: true,
  },
  {
    name: 'custom-role-without-external-id',
    grant: { vendor: Vendor.CUSTOM, mode: GrantMode.ROLE, access: Access.READ, vendorPrincipals: [VENDOR_ROLE] },
    message: externalIdRequired('custom'),
    mirrorsFunction: true,
  },
  {
    name: 'external-id-in-bucket-policy-mode',
    grant: { vendor: Vendor.SCALE_AI, mode: GrantMode.BUCKET_POLICY, externalId: EXTERNAL_ID },
    message: 'ExternalId is given, but it applies only with Mode: role; remove it',
    mirrorsFunction: true,
  },
  {
    name: 'vcc-role-with-external-id',
    grant: { vendor: Vendor.VCC, vendorPrincipals: [VENDOR_ROLE], externalId: EXTERNAL_ID },
    message: 'ExternalId is given, but vendor vcc sends no external id when it assumes the role; remove it',
    mirrorsFunction: true,
  },
  {
    name: 'external-id-too-short',
    grant: { vendor: Vendor.SCALE_AI, externalId: 'x' },
    message: externalIdInvalid(1),
    mirrorsFunction: true,
  },
  {
    name: 'external-id-bad-characters',
    grant: { vendor: Vendor.SCALE_AI, externalId: 'has space' },
    message: externalIdInvalid(9),
    mirrorsFunction: true,
  },
  {
    name: 'external-id-too-long',
    grant: { vendor: Vendor.SCALE_AI, externalId: 'x'.repeat(1225) },
    message: externalIdInvalid(1225),
    mirrorsFunction: true,
  },
  {
    name: 'role-name-in-bucket-policy-mode',
    grant: { vendor: Vendor.TELUS, roleName: 'VendorGrant-telus' },
    message: 'RoleName "VendorGrant-telus" is not valid; expected RoleName applies only with Mode: role; remove it',
    mirrorsFunction: true,
  },
  {
    name: 'role-name-invalid-characters',
    grant: { vendor: Vendor.SCALE_AI, externalId: EXTERNAL_ID, roleName: 'bad name' },
    message: 'RoleName "bad name" is not valid; expected 1 to 64 characters of letters, digits and _+=,.@-',
    mirrorsFunction: true,
  },
  {
    name: 'role-name-too-long',
    grant: { vendor: Vendor.SCALE_AI, externalId: EXTERNAL_ID, roleName: `VendorGrant-${'x'.repeat(53)}` },
    message: `RoleName "VendorGrant-${'x'.repeat(53)}" is not valid; expected 1 to 64 characters of letters, digits and _+=,.@-`,
    mirrorsFunction: true,
  },
  {
    name: 'alphasense-without-key',
    grant: { vendor: Vendor.ALPHASENSE, vendorPrincipals: [VENDOR_ROLE] },
    message:
      "property KmsKeyArn is required: vendor alphasense requires the bucket to be encrypted with a customer-managed KMS key; give that key's ARN",
    mirrorsFunction: true,
  },
  {
    name: 'principal-wildcard',
    grant: customRole('*'),
    message: principalInvalid('*', "a wildcard would grant the bucket to anyone; name the vendor's account or role"),
    mirrorsFunction: true,
  },
  {
    name: 'principal-not-an-arn',
    grant: customRole('vendor-role'),
    message: principalInvalid(
      'vendor-role',
      'expected a 12-digit account id or an IAM ARN such as arn:aws:iam::123456789012:role/Name',
    ),
    mirrorsFunction: true,
  },
  {
    name: 'principal-other-partition',
    grant: customRole('arn:aws-cn:iam::123456789012:role/vendor-role'),
    message: principalInvalid('arn:aws-cn:iam::123456789012:role/vendor-role', 'it is in partition "aws-cn", but this grant is in "aws"'),
    mirrorsFunction: true,
  },
  {
    name: 'principal-with-region',
    grant: customRole('arn:aws:iam:us-east-1:123456789012:role/vendor-role'),
    message: principalInvalid('arn:aws:iam:us-east-1:123456789012:role/vendor-role', 'IAM ARNs have no region'),
    mirrorsFunction: true,
  },
  {
    name: 'principal-not-iam',
    grant: customRole('arn:aws:s3:::contract-data'),
    message: principalInvalid('arn:aws:s3:::contract-data', SHAPES),
    mirrorsFunction: true,
  },
  {
    name: 'principal-account-not-12-digits',
    grant: customRole('arn:aws:iam::1234:role/vendor-role'),
    message: principalInvalid('arn:aws:iam::1234:role/vendor-role', 'the account "1234" is not a 12-digit account id'),
    mirrorsFunction: true,
  },
  {
    name: 'principal-not-a-role-user-or-root',
    grant: customRole('arn:aws:iam::123456789012:group/vendors'),
    message: principalInvalid('arn:aws:iam::123456789012:group/vendors', SHAPES),
    mirrorsFunction: true,
  },

  // --- The function's allow-lists: the same rule and message, but they depend on the provider's
  // environment, so they are not in rejections.json ---
  {
    name: 'vendor-not-allowed-by-provider',
    grant: { vendor: Vendor.SCALE_AI, externalId: EXTERNAL_ID },
    provider: { allowedVendors: [Vendor.TELUS, Vendor.VCC] },
    message: 'AllowedVendors (VENDOR_GRANTS_ALLOWED_VENDORS) does not allow Vendor scale-ai; allowed: telus, vcc',
    mirrorsFunction: false,
  },
  {
    name: 'principal-not-allowed-by-provider',
    grant: { vendor: Vendor.VCC, vendorPrincipals: [VENDOR_ROLE, 'arn:aws:iam::444455556666:role/other'] },
    provider: { allowedPrincipals: ['arn:aws:iam::123456789012:role/vendor-*'] },
    message:
      'AllowedPrincipals (VENDOR_GRANTS_ALLOWED_PRINCIPALS) does not allow VendorPrincipal arn:aws:iam::444455556666:role/other; allowed: arn:aws:iam::123456789012:role/vendor-*',
    mirrorsFunction: false,
  },

  // --- CDK only ---
  {
    name: 'provider-and-service-token',
    grant: { vendor: Vendor.TELUS },
    serviceToken: 'both',
    message: 'give either provider or serviceToken, not both',
    mirrorsFunction: false,
  },
  {
    name: 'neither-provider-nor-service-token',
    grant: { vendor: Vendor.TELUS },
    serviceToken: 'neither',
    message: "give provider (a VendorGrantsProvider) or serviceToken (e.g. Fn.importValue('vendor-grants-ServiceToken'))",
    mirrorsFunction: false,
  },
  {
    name: 'service-timeout-zero',
    grant: { vendor: Vendor.TELUS, serviceTimeout: Duration.seconds(0) },
    message: "serviceTimeout must be a whole number of seconds from 1 to 3600 (CloudFormation's ServiceTimeout), got 0 seconds",
    mirrorsFunction: false,
  },
  {
    name: 'service-timeout-over-an-hour',
    grant: { vendor: Vendor.TELUS, serviceTimeout: Duration.minutes(61) },
    message: "serviceTimeout must be a whole number of seconds from 1 to 3600 (CloudFormation's ServiceTimeout), got 3660 seconds",
    mirrorsFunction: false,
  },
  {
    name: 'service-timeout-fraction-of-a-second',
    grant: { vendor: Vendor.TELUS, serviceTimeout: Duration.millis(1500) },
    message: "serviceTimeout must be a whole number of seconds from 1 to 3600 (CloudFormation's ServiceTimeout), got 1.5 seconds",
    mirrorsFunction: false,
  },
  {
    name: 'role-name-outside-role-name-pattern',
    grant: { vendor: Vendor.SCALE_AI, externalId: EXTERNAL_ID, roleName: 'DataVendorRole' },
    provider: {},
    message:
      'RoleName DataVendorRole is not a name the provider may manage: its execution role may create and change only roles named VendorGrant-*, ScaleAI-Integration (roleNamePattern VendorGrant-*); set roleNamePattern on the VendorGrantsProvider, or leave roleName out',
    mirrorsFunction: false,
  },
  {
    name: 'role-name-outside-a-custom-role-name-pattern',
    grant: { vendor: Vendor.VCC, vendorPrincipals: [VENDOR_ROLE], roleName: 'Export-vcc' },
    provider: { roleNamePattern: 'DataVendor-*' },
    message:
      'RoleName Export-vcc is not a name the provider may manage: its execution role may create and change only roles named VendorGrant-*, ScaleAI-Integration, DataVendor-* (roleNamePattern DataVendor-*); set roleNamePattern on the VendorGrantsProvider, or leave roleName out',
    mirrorsFunction: false,
  },
];
