import * as fs from 'node:fs';

import { Aws, CfnOutput, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

import { bundledZipPath, missingZipMessage } from './assets';
import {
  AUDIT_POLICY_NAME,
  FUNCTION_POLICY_NAME,
  auditPolicyStatements,
  functionPolicyStatements,
} from './permissions';
import { ProviderLogLevel, Vendor } from './types';

/** Properties of a {@link VendorGrantsProvider}. */
export interface VendorGrantsProviderProps {
  /**
   * The function's code: a zip whose `bootstrap` is the vendor-grants-lambda binary built for
   * `architecture` (`make package` in the vendor-grants repository).
   *
   * @default the zip bundled into this package (`assets/vendor-grants-lambda-ARCH.zip`)
   */
  readonly code?: lambda.Code;

  /**
   * The architecture the code was built for.
   *
   * @default lambda.Architecture.X86_64
   */
  readonly architecture?: lambda.Architecture;

  /**
   * An existing lock table (partition key `LockId` of type String, TTL attribute `ExpiresAt`)
   * for the leases and the grant registry.
   *
   * @default a new on-demand table, encrypted with the AWS managed key, deleted with the stack
   */
  readonly lockTable?: dynamodb.ITable;

  /**
   * Names of the buckets whose policies grants may change. Either way only buckets owned by
   * this account (`s3:ResourceAccount`).
   *
   * @default any bucket of this account
   */
  readonly allowedBucketNames?: string[];

  /**
   * ARNs of the keys (key ARNs, not alias ARNs) whose key policies grants may change. Grants may
   * still name a key by its alias.
   *
   * @default any key of this account and region
   */
  readonly allowedKeyArns?: string[];

  /**
   * Role names (IAM wildcard `*`) the grants' `roleName` may use, besides the generated
   * `VendorGrant-*` and Scale AI's documented `ScaleAI-Integration`, which are always allowed.
   * The function can create, tag, change and delete roles of these names (at the IAM path
   * `/vendor-grants/`) only.
   *
   * @default 'VendorGrant-*'
   */
  readonly roleNamePattern?: string;

  /**
   * Catalog vendors grants may name (`VENDOR_GRANTS_ALLOWED_VENDORS`); others are refused
   * before anything is written.
   *
   * @default every vendor of the catalog
   */
  readonly allowedVendors?: Vendor[];

  /**
   * Account ids or IAM ARN patterns (`*` and `?` wildcards) that `vendorPrincipals` values
   * must match (`VENDOR_GRANTS_ALLOWED_PRINCIPALS`); an account id allows any principal of that
   * account.
   *
   * @default any principal the grant's checks accept
   */
  readonly allowedPrincipals?: string[];

  /**
   * The function's log filter (`RUST_LOG`).
   *
   * @default ProviderLogLevel.INFO
   */
  readonly logLevel?: ProviderLogLevel;

  /**
   * How long the function's log group keeps events.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * A customer-managed key for the log group. Its key policy must let the
   * `logs.REGION.amazonaws.com` service principal use it.
   *
   * @default CloudWatch Logs' own encryption
   */
  readonly logEncryptionKey?: kms.IKey;

  /**
   * Reserved concurrency for the function (grants on one policy are serialised by the lock table
   * whatever this is).
   *
   * @default none: the account's unreserved pool
   */
  readonly reservedConcurrency?: number;

  /**
   * When set (e.g. `events.Schedule.rate(Duration.days(1))`), EventBridge invokes the function on
   * this schedule with `{"vendor-grants": "audit"}`, and the function's role gets the audit's
   * read permissions (policy `vendor-grants-audit`).
   *
   * @default no scheduled audit
   */
  readonly auditSchedule?: events.Schedule;

  /**
   * With `auditSchedule`: re-apply drifted and missing grants from their registry record on each
   * run (never touching foreign statements; orphans are only reported).
   *
   * @default false
   */
  readonly auditFix?: boolean;

  /**
   * Export the service token (the function's ARN) under this name, as the deploy template does
   * (`vendor-grants-ServiceToken`), for stacks that import it with `Fn.importValue`.
   *
   * @default not exported
   */
  readonly exportName?: string;
}

/**
 * The vendor-grants release this construct deploys: Cargo.toml's version, as the deploy
 * template's `Version` output (its test keeps them equal). The function logs the same value as
 * `version` when it starts.
 */
export const VENDOR_GRANTS_VERSION = '0.1.0';

/** RoleNamePattern's AllowedPattern in the deploy template. */
const ROLE_NAME_PATTERN = /^[A-Za-z0-9_+=,.@*-]{1,64}$/;
/** LogKmsKeyArn-like check for allowedKeyArns: key ARNs only. */
const KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/[A-Za-z0-9-]+$/;

/**
 * The vendor-grants function and everything cloudformation/vendor-grants.yaml deploys with it:
 * the lock table, the log group, the least-privilege execution role and its policy, the
 * function (provided.al2023, handler bootstrap, 900 s, 256 MB), the permission for
 * CloudFormation of this account to invoke it, and, with `auditSchedule`, the scheduled audit.
 * Use `serviceToken` (or the provider itself) in {@link VendorGrant}.
 */
export class VendorGrantsProvider extends Construct {
  /** The ServiceToken for Custom::VendorGrant resources: the function's ARN. */
  public readonly serviceToken: string;

  /** The function behind Custom::VendorGrant. */
  public readonly function: lambda.Function;

  /** The lock table (VENDOR_GRANTS_LOCK_TABLE): leases and the grant registry. */
  public readonly lockTable: dynamodb.ITable;

  /** The function's execution role. */
  public readonly role: iam.Role;

  /**
   * The KMS HMAC key the function signs registry records with (VENDOR_GRANTS_REGISTRY_KEY);
   * `vendor-grants audit --registry-key` verifies records with it before repairing.
   */
  public readonly registryKey: kms.CfnKey;

  /** The function's log group. */
  public readonly logGroup: logs.LogGroup;

  /** The role names (IAM wildcard) grants may use besides VendorGrant-* and ScaleAI-Integration. */
  public readonly roleNamePattern: string;

  /** The vendors grants may name, or undefined for every vendor of the catalog. */
  public readonly allowedVendors?: Vendor[];

  /** The principal patterns grants' principals must match, or undefined for any. */
  public readonly allowedPrincipals?: string[];

  /** The scheduled audit's rule, when `auditSchedule` was given. */
  public readonly auditRule?: events.Rule;

  /** The vendor-grants release deployed (also the stack output `Version`). */
  public readonly version: string = VENDOR_GRANTS_VERSION;

  constructor(scope: Construct, id: string, props: VendorGrantsProviderProps = {}) {
    super(scope, id);

    const architecture = props.architecture ?? lambda.Architecture.X86_64;
    const pattern = props.roleNamePattern ?? 'VendorGrant-*';
    if (!Token.isUnresolved(pattern) && !ROLE_NAME_PATTERN.test(pattern)) {
      throw new Error(
        `roleNamePattern ${JSON.stringify(pattern)} is not valid: an IAM role name of 1 to 64 characters of letters, digits and _+=,.@-, with * as a wildcard`,
      );
    }
    if (props.allowedBucketNames !== undefined && props.allowedBucketNames.length === 0) {
      throw new Error('allowedBucketNames is empty: give bucket names, or leave it out for any bucket of the account');
    }
    if (props.allowedKeyArns !== undefined) {
      if (props.allowedKeyArns.length === 0) {
        throw new Error('allowedKeyArns is empty: give key ARNs, or leave it out for any key of the account and region');
      }
      for (const arn of props.allowedKeyArns) {
        if (!Token.isUnresolved(arn) && arn !== '*' && !KEY_ARN.test(arn)) {
          throw new Error(
            `allowedKeyArns: ${JSON.stringify(arn)} is not a key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID; alias ARNs are not accepted here)`,
          );
        }
      }
    }
    const reserved = props.reservedConcurrency;
    if (reserved !== undefined && !Token.isUnresolved(reserved) && !(Number.isInteger(reserved) && reserved >= 1)) {
      throw new Error(`reservedConcurrency must be a positive whole number, got ${reserved}`);
    }
    if (props.auditFix !== undefined && props.auditSchedule === undefined) {
      throw new Error('auditFix applies only with auditSchedule');
    }

    this.roleNamePattern = pattern;
    this.allowedVendors = props.allowedVendors;
    this.allowedPrincipals = props.allowedPrincipals;

    const code = props.code ?? bundledCode(architecture);

    // The lock table (template: LockTable): leases and the grant registry, which Update, Delete
    // and the audit act on, so it is kept with the stack's deletion and restorable.
    this.lockTable =
      props.lockTable ??
      new dynamodb.Table(this, 'LockTable', {
        partitionKey: { name: 'LockId', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        timeToLiveAttribute: 'ExpiresAt',
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        removalPolicy: RemovalPolicy.RETAIN,
      });

    // The function's log group (template: LogGroup), kept when the stack is deleted.
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.logEncryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // The execution role (template: FunctionRole) and its policy (FunctionPolicy).
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the vendor-grants custom resource function.',
    });
    // The registry key (template: RegistryKey): only the function's role may sign.
    this.registryKey = new kms.CfnKey(this, 'RegistryKey', {
      description: 'vendor-grants registry record MACs (only the function signs)',
      keySpec: 'HMAC_256',
      keyUsage: 'GENERATE_VERIFY_MAC',
      pendingWindowInDays: 7,
      keyPolicy: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'AccountAdministers',
            Effect: 'Allow',
            Principal: { AWS: `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:root` },
            Action: 'kms:*',
            Resource: '*',
          },
          {
            Sid: 'OnlyTheFunctionSigns',
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 'kms:GenerateMac',
            Resource: '*',
            Condition: { ArnNotEquals: { 'aws:PrincipalArn': this.role.roleArn } },
          },
        ],
      },
    });
    this.registryKey.applyRemovalPolicy(RemovalPolicy.DESTROY);
    const policy = new iam.CfnRolePolicy(this, 'FunctionPolicy', {
      roleName: this.role.roleName,
      policyName: FUNCTION_POLICY_NAME,
      policyDocument: new iam.PolicyDocument({
        minimize: false,
        statements: functionPolicyStatements({
          bucketNames: props.allowedBucketNames,
          keyArns: props.allowedKeyArns,
          roleNamePattern: pattern,
          ownRoleArn: this.role.roleArn,
          lockTableArn: this.lockTable.tableArn,
          registryKeyArn: this.registryKey.attrArn,
          logGroupArn: this.logGroup.logGroupArn,
        }),
      }),
    });

    // The function (template: Function).
    this.function = new lambda.Function(this, 'Function', {
      description: 'vendor-grants custom resource (Custom::VendorGrant)',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: 'bootstrap',
      architecture,
      code,
      role: this.role,
      timeout: Duration.seconds(900),
      memorySize: 256,
      reservedConcurrentExecutions: reserved,
      environment: {
        VENDOR_GRANTS_LOCK_TABLE: this.lockTable.tableName,
        VENDOR_GRANTS_REGISTRY_KEY: this.registryKey.attrArn,
        VENDOR_GRANTS_ALLOWED_VENDORS: (props.allowedVendors ?? []).join(','),
        VENDOR_GRANTS_ALLOWED_PRINCIPALS: (props.allowedPrincipals ?? []).join(','),
        RUST_LOG: props.logLevel ?? ProviderLogLevel.INFO,
      },
      logGroup: this.logGroup,
    });
    // The permissions must be in place before the first event can arrive.
    this.function.node.addDependency(policy);
    this.serviceToken = this.function.functionArn;

    // CloudFormation of this account only may invoke it (template: CloudFormationInvokePermission).
    this.function.addPermission('CloudFormationInvoke', {
      principal: new iam.ServicePrincipal('cloudformation.amazonaws.com'),
      action: 'lambda:InvokeFunction',
      sourceAccount: Stack.of(this).account,
    });

    // The scheduled audit (template: AuditPolicy, AuditRule, AuditInvokePermission).
    if (props.auditSchedule !== undefined) {
      const auditPolicy = new iam.CfnRolePolicy(this, 'AuditPolicy', {
        roleName: this.role.roleName,
        policyName: AUDIT_POLICY_NAME,
        policyDocument: new iam.PolicyDocument({
          minimize: false,
          statements: auditPolicyStatements(this.lockTable.tableArn),
        }),
      });
      this.auditRule = new events.Rule(this, 'AuditRule', {
        description: 'vendor-grants scheduled audit (drift, orphans, missing grants)',
        schedule: props.auditSchedule,
        targets: [
          new targets.LambdaFunction(this.function, {
            event: events.RuleTargetInput.fromObject({ 'vendor-grants': 'audit', 'fix': props.auditFix ?? false }),
          }),
        ],
      });
      this.auditRule.node.addDependency(auditPolicy);
    }

    // The release (template: Output Version). Never replace this function once grants use it:
    // their ServiceToken is its ARN, which CloudFormation does not let them change.
    new CfnOutput(this, 'Version', {
      description: 'The vendor-grants release of this provider (Cargo.toml\'s version).',
      value: this.version,
    });

    if (props.exportName !== undefined) {
      new CfnOutput(this, 'ServiceToken', {
        description: 'ServiceToken for Custom::VendorGrant resources (the function\'s ARN).',
        value: this.serviceToken,
        exportName: props.exportName,
      });
    }
  }
}

/** The zip bundled into the package for `architecture`, or an error naming how to build it. */
function bundledCode(architecture: lambda.Architecture): lambda.Code {
  const zip = bundledZipPath(architecture.name);
  if (!fs.existsSync(zip)) throw new Error(missingZipMessage(architecture.name));
  return lambda.Code.fromAsset(zip);
}
