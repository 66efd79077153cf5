import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';

import { ProviderLogLevel, VENDOR_GRANTS_VERSION, Vendor, VendorGrantsProvider } from '../src';
import { packageRoot } from '../src/assets';
import { CDK_ROOT, fakeAssets, newStack, realAssets, tempDir, throwsExactly } from './helpers';

const partitionArn = (...parts: unknown[]) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ...parts]] });

function statement(template: Template, sid: string): any {
  const policies = template.findResources('AWS::IAM::RolePolicy');
  for (const p of Object.values(policies)) {
    const s = (p as any).Properties.PolicyDocument.Statement.find((x: any) => x.Sid === sid);
    if (s) return s;
  }
  assert.fail(`no statement ${sid}`);
}

describe('VendorGrantsProvider', () => {
  afterEach(() => realAssets());

  test('names the release: a Version output equal to Cargo.toml\'s version and the template\'s', () => {
    fakeAssets(['x86_64']);
    const cargo = fs.readFileSync(path.join(CDK_ROOT, '..', 'Cargo.toml'), 'utf8');
    const version = /^version = "([^"]+)"/m.exec(cargo)?.[1];
    assert.equal(VENDOR_GRANTS_VERSION, version, 'keep VENDOR_GRANTS_VERSION equal to Cargo.toml');
    const deploy = fs.readFileSync(path.join(CDK_ROOT, '..', 'cloudformation', 'vendor-grants.yaml'), 'utf8');
    assert.match(deploy, new RegExp(`\\n  Version:\\n(?:    .*\\n)*?    Value: ${version!.replace(/\./g, '\\.')}\\n`));
    const stack = newStack();
    const provider = new VendorGrantsProvider(stack, 'Provider');
    assert.equal(provider.version, version);
    const outputs = Template.fromStack(stack).findOutputs('*', { Value: version });
    assert.equal(Object.keys(outputs).length, 1, JSON.stringify(outputs));
  });

  test('deploys what the template deploys, with the bundled zip by default', () => {
    const assets = fakeAssets(['x86_64']);
    const stack = newStack();
    const provider = new VendorGrantsProvider(stack, 'Provider');
    const t = Template.fromStack(stack);

    t.resourceCountIs('AWS::DynamoDB::Table', 1);
    t.hasResource('AWS::DynamoDB::Table', {
      // The grant registry is kept and restorable, as the template's LockTable.
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'LockId', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'LockId', AttributeType: 'S' }],
        TimeToLiveSpecification: { AttributeName: 'ExpiresAt', Enabled: true },
        SSESpecification: { SSEEnabled: true },
      },
    });
    t.hasResource('AWS::Logs::LogGroup', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: { RetentionInDays: 90, LogGroupName: Match.absent() },
    });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Architectures: ['x86_64'],
      Timeout: 900,
      MemorySize: 256,
      FunctionName: Match.absent(),
      ReservedConcurrentExecutions: Match.absent(),
      Environment: {
        Variables: {
          VENDOR_GRANTS_LOCK_TABLE: { Ref: stack.getLogicalId(provider.lockTable.node.defaultChild as any) },
          VENDOR_GRANTS_ALLOWED_VENDORS: '',
          VENDOR_GRANTS_ALLOWED_PRINCIPALS: '',
          RUST_LOG: 'info',
        },
      },
      LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^ProviderLogGroup') } },
    });
    t.hasResource('AWS::Lambda::Function', { DependsOn: Match.arrayWith([Match.stringLikeRegexp('^ProviderFunctionPolicy')]) });
    t.resourceCountIs('AWS::Lambda::Permission', 1);
    t.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'cloudformation.amazonaws.com',
      SourceAccount: '123456789012',
      FunctionName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ProviderFunction'), 'Arn'] },
    });
    t.resourceCountIs('AWS::Events::Rule', 0);
    t.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } }],
      },
    });

    // The public members.
    assert.equal(stack.resolve(provider.serviceToken)['Fn::GetAtt'][1], 'Arn');
    assert.deepEqual(stack.resolve(provider.serviceToken), stack.resolve(provider.function.functionArn));
    assert.ok(provider.role.roleArn);
    assert.equal(provider.roleNamePattern, 'VendorGrant-*');

    // The code is the bundled zip, taken as it is (a zip archive, not a directory to zip).
    const asset = provider.function.node.findChild('Code') as s3assets.Asset;
    assert.equal(asset.isZipArchive, true);
    assert.ok(fs.existsSync(path.join(assets, 'vendor-grants-lambda-x86_64.zip')));
  });

  test('the default lookup is <package root>/assets/vendor-grants-lambda-<arch>.zip', () => {
    assert.equal(packageRoot(), CDK_ROOT);
    realAssets();
    const { bundledZipPath } = require('../src/assets') as typeof import('../src/assets');
    assert.equal(bundledZipPath('arm64'), path.join(CDK_ROOT, 'assets', 'vendor-grants-lambda-arm64.zip'));
  });

  test('without code and without a bundled zip, synth names the command that builds it', () => {
    const dir = fakeAssets([]);
    for (const [architecture, name] of [
      [undefined, 'x86_64'],
      [lambda.Architecture.X86_64, 'x86_64'],
      [lambda.Architecture.ARM_64, 'arm64'],
    ] as const) {
      throwsExactly(
        () => new VendorGrantsProvider(newStack(), 'Provider', { architecture }),
        `no bundled Lambda zip at ${path.join(dir, `vendor-grants-lambda-${name}.zip`)}: run \`make package\` (ARCH=${name}) in the vendor-grants repository and \`npm pack\` again, or pass \`code\``,
      );
    }
    // Only the other architecture bundled: still an error for this one.
    fakeAssets(['x86_64']);
    assert.throws(() => new VendorGrantsProvider(newStack(), 'Provider', { architecture: lambda.Architecture.ARM_64 }), /ARCH=arm64/);
  });

  test('code, architecture and the arm64 bundle', () => {
    fakeAssets([]);
    const dir = tempDir('code-');
    fs.writeFileSync(path.join(dir, 'bootstrap'), '#!/bin/sh\n');
    const stack = newStack();
    new VendorGrantsProvider(stack, 'Provider', { code: lambda.Code.fromAsset(dir), architecture: lambda.Architecture.ARM_64 });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', { Architectures: ['arm64'] });

    fakeAssets(['arm64']);
    const stack2 = newStack();
    new VendorGrantsProvider(stack2, 'Provider', { architecture: lambda.Architecture.ARM_64 });
    Template.fromStack(stack2).hasResourceProperties('AWS::Lambda::Function', { Architectures: ['arm64'] });
  });

  test('operations settings: log level, retention, log key, reserved concurrency, allow-lists, export', () => {
    fakeAssets();
    const stack = newStack();
    const logKey = new kms.Key(stack, 'LogKey');
    new VendorGrantsProvider(stack, 'Provider', {
      logLevel: ProviderLogLevel.DEBUG,
      logRetention: logs.RetentionDays.ONE_YEAR,
      logEncryptionKey: logKey,
      reservedConcurrency: 5,
      allowedVendors: [Vendor.TELUS, Vendor.SCALE_AI],
      allowedPrincipals: ['111122223333', 'arn:aws:iam::444455556666:role/vendor-*'],
      exportName: 'vendor-grants-ServiceToken',
    });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::Lambda::Function', {
      ReservedConcurrentExecutions: 5,
      Environment: {
        Variables: {
          RUST_LOG: 'info,vendor_grants=debug',
          VENDOR_GRANTS_ALLOWED_VENDORS: 'telus,scale-ai',
          VENDOR_GRANTS_ALLOWED_PRINCIPALS: '111122223333,arn:aws:iam::444455556666:role/vendor-*',
        },
      },
    });
    t.hasResourceProperties('AWS::Logs::LogGroup', {
      RetentionInDays: 365,
      KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^LogKey'), 'Arn'] },
    });
    t.hasOutput('*', {
      Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ProviderFunction'), 'Arn'] },
      Export: { Name: 'vendor-grants-ServiceToken' },
    });
  });

  test('default scoping: any bucket and key of the account, roles VendorGrant-* and ScaleAI-Integration', () => {
    fakeAssets();
    const stack = newStack({ envAgnostic: true });
    new VendorGrantsProvider(stack, 'Provider');
    const t = Template.fromStack(stack);
    assert.deepEqual(statement(t, 'BucketPolicies').Resource, partitionArn(':s3:::*'));
    assert.deepEqual(statement(t, 'BucketPolicies').Condition, { StringEquals: { 's3:ResourceAccount': { Ref: 'AWS::AccountId' } } });
    assert.deepEqual(
      statement(t, 'KeyPolicies').Resource,
      partitionArn(':kms:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':key/*'),
    );
    // Scale's documented role at the path Scale assumes it at (/), beside the managed path.
    const roles = [
      partitionArn(':iam::', { Ref: 'AWS::AccountId' }, ':role/vendor-grants/VendorGrant-*'),
      partitionArn(':iam::', { Ref: 'AWS::AccountId' }, ':role/vendor-grants/ScaleAI-Integration'),
      partitionArn(':iam::', { Ref: 'AWS::AccountId' }, ':role/ScaleAI-Integration'),
    ];
    assert.deepEqual(statement(t, 'CreateManagedRoles').Resource, roles);
    assert.deepEqual(statement(t, 'ManageOwnRoles').Resource, roles);
    assert.deepEqual(statement(t, 'ReadRoles').Resource, partitionArn(':iam::', { Ref: 'AWS::AccountId' }, ':role/*'));
    assert.equal(statement(t, 'NeverTouchOwnRole').Effect, 'Deny');
    assert.equal(statement(t, 'NeverTouchOwnRole').Resource['Fn::GetAtt'][1], 'Arn');
    assert.match(statement(t, 'NeverTouchOwnRole').Resource['Fn::GetAtt'][0], /^ProviderRole/);
    assert.match(statement(t, 'Leases').Resource['Fn::GetAtt'][0], /^ProviderLockTable/);
    assert.match(statement(t, 'Logs').Resource['Fn::GetAtt'][0], /^ProviderLogGroup/);
  });

  test('allowedBucketNames, allowedKeyArns and roleNamePattern scope the statements', () => {
    fakeAssets();
    const stack = newStack({ envAgnostic: true });
    const keyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    new VendorGrantsProvider(stack, 'Provider', {
      allowedBucketNames: ['corp-data', 'exports'],
      allowedKeyArns: [keyArn],
      roleNamePattern: 'DataVendor-*',
    });
    const t = Template.fromStack(stack);
    assert.deepEqual(statement(t, 'BucketPolicies').Resource, [partitionArn(':s3:::corp-data'), partitionArn(':s3:::exports')]);
    assert.deepEqual(statement(t, 'BucketPolicies').Condition, { StringEquals: { 's3:ResourceAccount': { Ref: 'AWS::AccountId' } } });
    assert.equal(statement(t, 'KeyPolicies').Resource, keyArn);
    const roles = ['vendor-grants/VendorGrant-*', 'vendor-grants/ScaleAI-Integration', 'vendor-grants/DataVendor-*', 'ScaleAI-Integration'].map((n) =>
      partitionArn(':iam::', { Ref: 'AWS::AccountId' }, `:role/${n}`),
    );
    assert.deepEqual(statement(t, 'CreateManagedRoles').Resource, roles);
    assert.deepEqual(statement(t, 'ManageOwnRoles').Resource, roles);
    assert.deepEqual(statement(t, 'ManageOwnRoles').Condition, {
      'StringEquals': { 'aws:ResourceTag/vendor-grants:managed': 'true' },
      'Null': { 'aws:ResourceTag/vendor-grants:owner': 'false' },
    });
    assert.deepEqual(statement(t, 'CreateManagedRoles').Condition, {
      'StringEquals': { 'aws:RequestTag/vendor-grants:managed': 'true' },
      'ForAllValues:StringEquals': { 'aws:TagKeys': ['vendor-grants:managed', 'vendor-grants:owner'] },
      'Null': { 'aws:RequestTag/vendor-grants:owner': 'false' },
    });
    // '*' means any, as in the template.
    const stack2 = newStack({ envAgnostic: true });
    new VendorGrantsProvider(stack2, 'Provider', { allowedBucketNames: ['*'], allowedKeyArns: ['*'] });
    const t2 = Template.fromStack(stack2);
    assert.deepEqual(statement(t2, 'BucketPolicies').Resource, partitionArn(':s3:::*'));
    assert.deepEqual(statement(t2, 'KeyPolicies').Resource, partitionArn(':kms:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':key/*'));
  });

  test('an existing lock table', () => {
    fakeAssets();
    const stack = newStack();
    const table = dynamodb.Table.fromTableName(stack, 'Existing', 'vendor-grants-locks');
    const provider = new VendorGrantsProvider(stack, 'Provider', { lockTable: table });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::DynamoDB::Table', 0);
    assert.equal(provider.lockTable, table);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { VENDOR_GRANTS_LOCK_TABLE: 'vendor-grants-locks' } },
    });
    assert.deepEqual(
      statement(t, 'Leases').Resource,
      partitionArn(':dynamodb:us-east-1:123456789012:table/vendor-grants-locks'),
    );
  });

  test('the scheduled audit: rule, input, permission and policy', () => {
    fakeAssets();
    for (const fix of [undefined, true]) {
      const stack: Stack = newStack();
      const provider = new VendorGrantsProvider(stack, 'Provider', {
        auditSchedule: events.Schedule.rate(Duration.days(1)),
        auditFix: fix,
      });
      assert.ok(provider.auditRule);
      const t = Template.fromStack(stack);
      t.resourceCountIs('AWS::Events::Rule', 1);
      t.hasResourceProperties('AWS::Events::Rule', {
        ScheduleExpression: 'rate(1 day)',
        State: 'ENABLED',
        Targets: [
          {
            Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ProviderFunction'), 'Arn'] },
            Input: JSON.stringify({ 'vendor-grants': 'audit', 'fix': fix ?? false }),
          },
        ],
      });
      t.resourceCountIs('AWS::Lambda::Permission', 2);
      t.hasResourceProperties('AWS::Lambda::Permission', {
        Action: 'lambda:InvokeFunction',
        Principal: 'events.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ProviderAuditRule'), 'Arn'] },
      });
      t.hasResourceProperties('AWS::IAM::RolePolicy', {
        PolicyName: 'vendor-grants-audit',
        RoleName: { Ref: Match.stringLikeRegexp('^ProviderRole') },
      });
      assert.match(statement(t, 'Registry').Resource['Fn::GetAtt'][0], /^ProviderLockTable/);
    }
  });

  test('bad provider settings are refused at synth time', () => {
    fakeAssets();
    const cases: [object, string][] = [
      [
        { roleNamePattern: 'bad name' },
        'roleNamePattern "bad name" is not valid: an IAM role name of 1 to 64 characters of letters, digits and _+=,.@-, with * as a wildcard',
      ],
      [{ allowedBucketNames: [] }, 'allowedBucketNames is empty: give bucket names, or leave it out for any bucket of the account'],
      [{ allowedKeyArns: [] }, 'allowedKeyArns is empty: give key ARNs, or leave it out for any key of the account and region'],
      [
        { allowedKeyArns: ['arn:aws:kms:us-east-1:123456789012:alias/data'] },
        'allowedKeyArns: "arn:aws:kms:us-east-1:123456789012:alias/data" is not a key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID; alias ARNs are not accepted here)',
      ],
      [{ reservedConcurrency: 0 }, 'reservedConcurrency must be a positive whole number, got 0'],
      [{ auditFix: true }, 'auditFix applies only with auditSchedule'],
    ];
    for (const [props, message] of cases) {
      throwsExactly(() => new VendorGrantsProvider(newStack(), 'Provider', props), message);
    }
  });
});
