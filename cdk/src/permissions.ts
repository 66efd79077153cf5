/**
 * The provider's IAM statements: the one place the construct's permissions are written, each the
 * same (Sid, actions, resource scoping, conditions) as in cloudformation/vendor-grants.yaml, where
 * every statement is explained. test/permissions.test.ts parses that template and checks that the
 * synthesized provider grants exactly the same actions, Sid by Sid. Internal: not exported from
 * the package.
 */
import { Aws } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/** What the function policy's statements are scoped to. */
export interface FunctionPolicyScope {
  /** Bucket names grants may change, or undefined for any bucket of the account (`*`). */
  readonly bucketNames?: readonly string[];
  /** Key ARNs grants may change, or undefined for any key of the account and region (`*`). */
  readonly keyArns?: readonly string[];
  /** RoleNamePattern: role names (IAM wildcard) besides VendorGrant-* and ScaleAI-Integration. */
  readonly roleNamePattern: string;
  /** The execution role's ARN (the Deny NeverTouchOwnRole). */
  readonly ownRoleArn: string;
  /** The lock table's ARN. */
  readonly lockTableArn: string;
  /** The registry key's ARN (the HMAC key registry records are signed with). */
  readonly registryKeyArn: string;
  /** The log group's ARN. */
  readonly logGroupArn: string;
}

/** The name of the function's inline policy (PolicyName in the template). */
export const FUNCTION_POLICY_NAME = 'vendor-grants';
/** The name of the scheduled audit's inline policy. */
export const AUDIT_POLICY_NAME = 'vendor-grants-audit';

const accountRoles = (): string => `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/*`;

/** Reading any role of the account: in the function's policy (role checks) and the audit's. */
const readRoles = (): iam.PolicyStatement =>
  new iam.PolicyStatement({
    sid: 'ReadRoles',
    effect: iam.Effect.ALLOW,
    actions: ['iam:GetRole', 'iam:ListRolePolicies', 'iam:GetRolePolicy'],
    resources: [accountRoles()],
  });

/**
 * The role ARNs the function may create and manage: these names under the path /vendor-grants/,
 * and Scale's documented ScaleAI-Integration at the path Scale assumes it at (/).
 */
function managedRoleArns(pattern: string): string[] {
  const account = `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/`;
  const base = `${account}vendor-grants/`;
  return [`${base}VendorGrant-*`, `${base}ScaleAI-Integration`, `${base}${pattern}`, `${account}ScaleAI-Integration`];
}

/** `AllowedBucketNames` / `AllowedKeyArns` = `*` (or not given): anything of the account. */
function isAny(list: readonly string[] | undefined): boolean {
  return list === undefined || (list.length === 1 && list[0] === '*');
}

/** The statements of the function's policy (FunctionPolicy in the template), in its order. */
export function functionPolicyStatements(scope: FunctionPolicyScope): iam.PolicyStatement[] {
  const buckets = isAny(scope.bucketNames)
    ? [`arn:${Aws.PARTITION}:s3:::*`]
    : scope.bucketNames!.map((name) => `arn:${Aws.PARTITION}:s3:::${name}`);
  const keys = isAny(scope.keyArns)
    ? [`arn:${Aws.PARTITION}:kms:${Aws.REGION}:${Aws.ACCOUNT_ID}:key/*`]
    : [...scope.keyArns!];
  const managed = managedRoleArns(scope.roleNamePattern);
  return [
    new iam.PolicyStatement({
      sid: 'BucketPolicies',
      effect: iam.Effect.ALLOW,
      actions: [
        's3:GetBucketPolicy',
        's3:PutBucketPolicy',
        's3:DeleteBucketPolicy',
        's3:GetEncryptionConfiguration',
        's3:GetBucketPublicAccessBlock',
        's3:GetBucketOwnershipControls',
      ],
      resources: buckets,
      conditions: { StringEquals: { 's3:ResourceAccount': Aws.ACCOUNT_ID } },
    }),
    new iam.PolicyStatement({
      sid: 'KeyPolicies',
      effect: iam.Effect.ALLOW,
      actions: ['kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:PutKeyPolicy'],
      resources: keys,
    }),
    readRoles(),
    new iam.PolicyStatement({
      sid: 'CreateManagedRoles',
      effect: iam.Effect.ALLOW,
      actions: ['iam:CreateRole', 'iam:TagRole'],
      resources: managed,
      conditions: {
        'StringEquals': { 'aws:RequestTag/vendor-grants:managed': 'true' },
        'ForAllValues:StringEquals': { 'aws:TagKeys': ['vendor-grants:managed', 'vendor-grants:owner'] },
        'Null': { 'aws:RequestTag/vendor-grants:owner': 'false' },
      },
    }),
    new iam.PolicyStatement({
      sid: 'ManageOwnRoles',
      effect: iam.Effect.ALLOW,
      actions: ['iam:UpdateAssumeRolePolicy', 'iam:PutRolePolicy', 'iam:DeleteRolePolicy', 'iam:DeleteRole'],
      resources: managed,
      conditions: {
        'StringEquals': { 'aws:ResourceTag/vendor-grants:managed': 'true' },
        'Null': { 'aws:ResourceTag/vendor-grants:owner': 'false' },
      },
    }),
    new iam.PolicyStatement({
      sid: 'NeverTouchOwnRole',
      effect: iam.Effect.DENY,
      actions: [
        'iam:TagRole',
        'iam:UpdateAssumeRolePolicy',
        'iam:PutRolePolicy',
        'iam:DeleteRolePolicy',
        'iam:DeleteRole',
      ],
      resources: [scope.ownRoleArn],
    }),
    new iam.PolicyStatement({
      sid: 'Leases',
      effect: iam.Effect.ALLOW,
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem'],
      resources: [scope.lockTableArn],
    }),
    new iam.PolicyStatement({
      sid: 'RegistryMac',
      effect: iam.Effect.ALLOW,
      actions: ['kms:GenerateMac', 'kms:VerifyMac'],
      resources: [scope.registryKeyArn],
    }),
    new iam.PolicyStatement({
      sid: 'Logs',
      effect: iam.Effect.ALLOW,
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [scope.logGroupArn],
    }),
  ];
}

/** The statements of the scheduled audit's policy (AuditPolicy in the template), in its order. */
export function auditPolicyStatements(lockTableArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'ListBuckets',
      effect: iam.Effect.ALLOW,
      actions: ['s3:ListAllMyBuckets'],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      sid: 'ReadBucketPolicies',
      effect: iam.Effect.ALLOW,
      actions: [
        's3:GetBucketLocation',
        's3:GetBucketPolicy',
        's3:GetEncryptionConfiguration',
        's3:GetBucketPublicAccessBlock',
        's3:GetBucketOwnershipControls',
      ],
      resources: [`arn:${Aws.PARTITION}:s3:::*`],
      conditions: { StringEquals: { 's3:ResourceAccount': Aws.ACCOUNT_ID } },
    }),
    new iam.PolicyStatement({
      sid: 'ListKeys',
      effect: iam.Effect.ALLOW,
      actions: ['kms:ListKeys', 'kms:ListAliases'],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      sid: 'ReadKeyPolicies',
      effect: iam.Effect.ALLOW,
      actions: ['kms:DescribeKey', 'kms:GetKeyPolicy'],
      resources: [`arn:${Aws.PARTITION}:kms:${Aws.REGION}:${Aws.ACCOUNT_ID}:key/*`],
    }),
    new iam.PolicyStatement({
      sid: 'ListRoles',
      effect: iam.Effect.ALLOW,
      actions: ['iam:ListRoles'],
      resources: ['*'],
    }),
    readRoles(),
    new iam.PolicyStatement({
      sid: 'ReadRoleAttachments',
      effect: iam.Effect.ALLOW,
      actions: ['iam:ListAttachedRolePolicies'],
      resources: [accountRoles()],
    }),
    new iam.PolicyStatement({
      sid: 'OwningStacks',
      effect: iam.Effect.ALLOW,
      actions: ['cloudformation:DescribeStacks'],
      resources: [`arn:${Aws.PARTITION}:cloudformation:${Aws.REGION}:${Aws.ACCOUNT_ID}:stack/*/*`],
    }),
    new iam.PolicyStatement({
      sid: 'ListStacks',
      effect: iam.Effect.ALLOW,
      actions: ['cloudformation:ListStacks'],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      sid: 'StackResources',
      effect: iam.Effect.ALLOW,
      actions: ['cloudformation:ListStackResources'],
      resources: [`arn:${Aws.PARTITION}:cloudformation:${Aws.REGION}:${Aws.ACCOUNT_ID}:stack/*/*`],
    }),
    new iam.PolicyStatement({
      sid: 'Registry',
      effect: iam.Effect.ALLOW,
      actions: ['dynamodb:Scan', 'dynamodb:Query'],
      resources: [lockTableArn],
    }),
  ];
}
