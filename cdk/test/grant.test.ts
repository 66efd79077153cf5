import * as assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { App, CfnParameter, DefaultStackSynthesizer, Duration, Fn, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';

import { Access, GrantMode, Vendor, VendorGrant, VendorGrantProps, VendorGrantsProvider } from '../src';
import { fakeAssets, newStack, realAssets } from './helpers';
import { EXTERNAL_ID, KEY_ARN, VENDOR_ROLE, VENDOR_ROLE_SECONDARY } from './rejections';

const IMPORTED_TOKEN = { 'Fn::ImportValue': 'vendor-grants-ServiceToken' };

function grantIn(stack: Stack, props: Omit<VendorGrantProps, 'bucket' | 'serviceToken'> & { bucket?: s3.IBucket }) {
  const bucket = props.bucket ?? new s3.Bucket(stack, 'Bucket');
  return new VendorGrant(stack, 'Grant', {
    serviceToken: props.provider ? undefined : Fn.importValue('vendor-grants-ServiceToken'),
    ...props,
    bucket,
  });
}

/** The one Custom::VendorGrant's resource (Type, Properties, DependsOn). */
function grantResource(stack: Stack): any {
  const found = Template.fromStack(stack).findResources('Custom::VendorGrant');
  const all = Object.values(found);
  assert.equal(all.length, 1);
  return all[0];
}

describe('VendorGrant', () => {
  before(() => fakeAssets());
  after(() => realAssets());

  test('emits a Custom::VendorGrant with exactly the contract names, omitting what is not given', () => {
    const stack = newStack();
    grantIn(stack, { vendor: Vendor.TELUS });
    const t = Template.fromStack(stack);
    t.resourceCountIs('Custom::VendorGrant', 1);
    const r = grantResource(stack);
    assert.deepEqual(Object.keys(r.Properties).sort(), ['BucketName', 'ServiceToken', 'Vendor']);
    assert.deepEqual(r.Properties.ServiceToken, IMPORTED_TOKEN);
    assert.equal(r.Properties.Vendor, 'telus');
    assert.match(r.Properties.BucketName.Ref, /^Bucket/);
  });

  const everyVendorAndMode: [string, Omit<VendorGrantProps, 'bucket' | 'serviceToken'>, Record<string, unknown>][] = [
    ['telus (bucket-policy) with a key', { vendor: Vendor.TELUS }, { Vendor: 'telus' }],
    ['telus, bucket-policy explicitly', { vendor: Vendor.TELUS, mode: GrantMode.BUCKET_POLICY, access: Access.FULL }, { Vendor: 'telus', Mode: 'bucket-policy', Access: 'full' }],
    ['scale-ai role (default)', { vendor: Vendor.SCALE_AI, externalId: EXTERNAL_ID }, { Vendor: 'scale-ai', ExternalId: EXTERNAL_ID }],
    [
      'scale-ai role with a role name',
      { vendor: Vendor.SCALE_AI, mode: GrantMode.ROLE, externalId: EXTERNAL_ID, roleName: 'ScaleAI-Integration' },
      { Vendor: 'scale-ai', Mode: 'role', ExternalId: EXTERNAL_ID, RoleName: 'ScaleAI-Integration' },
    ],
    ['scale-ai bucket-policy', { vendor: Vendor.SCALE_AI, mode: GrantMode.BUCKET_POLICY, access: Access.READ }, { Vendor: 'scale-ai', Mode: 'bucket-policy', Access: 'read' }],
    [
      'vcc role (default, no external id), two principals as a list',
      { vendor: Vendor.VCC, vendorPrincipals: [VENDOR_ROLE, VENDOR_ROLE_SECONDARY] },
      { Vendor: 'vcc', VendorPrincipal: [VENDOR_ROLE, VENDOR_ROLE_SECONDARY] },
    ],
    [
      'vcc bucket-policy, one principal as a string',
      { vendor: Vendor.VCC, mode: GrantMode.BUCKET_POLICY, vendorPrincipals: [VENDOR_ROLE] },
      { Vendor: 'vcc', Mode: 'bucket-policy', VendorPrincipal: VENDOR_ROLE },
    ],
    [
      'alphasense bucket-policy (default)',
      { vendor: Vendor.ALPHASENSE, vendorPrincipals: [VENDOR_ROLE] },
      { Vendor: 'alphasense', VendorPrincipal: VENDOR_ROLE },
    ],
    [
      'alphasense role',
      { vendor: Vendor.ALPHASENSE, mode: GrantMode.ROLE, externalId: EXTERNAL_ID, vendorPrincipals: [VENDOR_ROLE] },
      { Vendor: 'alphasense', Mode: 'role', ExternalId: EXTERNAL_ID, VendorPrincipal: VENDOR_ROLE },
    ],
    [
      'custom bucket-policy with access and prefix',
      { vendor: Vendor.CUSTOM, access: Access.READ_WRITE, prefix: 'datasets/', vendorPrincipals: [VENDOR_ROLE] },
      { Vendor: 'custom', Access: 'read-write', Prefix: 'datasets/', VendorPrincipal: VENDOR_ROLE },
    ],
    [
      'custom role with access write',
      { vendor: Vendor.CUSTOM, mode: GrantMode.ROLE, access: Access.WRITE, externalId: EXTERNAL_ID, vendorPrincipals: [VENDOR_ROLE], roleName: 'VendorGrant-custom-x' },
      { Vendor: 'custom', Mode: 'role', Access: 'write', ExternalId: EXTERNAL_ID, VendorPrincipal: VENDOR_ROLE, RoleName: 'VendorGrant-custom-x' },
    ],
  ];
  for (const [name, props, expected] of everyVendorAndMode) {
    test(`every vendor and mode: ${name}`, () => {
      const stack = newStack();
      const key = new kms.Key(stack, 'Key');
      grantIn(stack, { ...props, key });
      Template.fromStack(stack).hasResourceProperties('Custom::VendorGrant', {
        ServiceToken: IMPORTED_TOKEN,
        BucketName: { Ref: Match.stringLikeRegexp('^Bucket') },
        KmsKeyArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] },
        ...expected,
      });
      const r = grantResource(stack);
      assert.deepEqual(
        Object.keys(r.Properties).sort(),
        [...new Set(['ServiceToken', 'BucketName', 'KmsKeyArn', ...Object.keys(expected)])].sort(),
      );
    });
  }

  test('a principal holding a comma is sent as a list (the function splits strings on commas)', () => {
    const stack = newStack();
    grantIn(stack, { vendor: Vendor.VCC, vendorPrincipals: ['arn:aws:iam::123456789012:role/a,b'] });
    assert.deepEqual(grantResource(stack).Properties.VendorPrincipal, ['arn:aws:iam::123456789012:role/a,b']);
  });

  test('every attribute is a Fn::GetAtt of the grant', () => {
    const stack = newStack();
    const grant = grantIn(stack, { vendor: Vendor.TELUS });
    const logicalId = stack.getLogicalId(grant.resource);
    const attributes: [string, string][] = [
      [grant.grantId, 'GrantId'],
      [grant.roleArn, 'RoleArn'],
      [grant.statementIds, 'StatementIds'],
      [grant.bucketArn, 'BucketArn'],
      [grant.kmsKeyArn, 'KmsKeyArn'],
      [grant.vendorPrincipal, 'VendorPrincipal'],
      [grant.region, 'Region'],
    ];
    for (const [token, name] of attributes) {
      assert.equal(typeof token, 'string');
      assert.deepEqual(stack.resolve(token), { 'Fn::GetAtt': [logicalId, name] });
    }
    assert.equal(grant.node.defaultChild, grant.resource);
    assert.equal(grant.resource.cfnResourceType, 'Custom::VendorGrant');
  });

  test('depends on the bucket, its bucket policy and the key, so it is deleted before them', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    const bucket = new s3.Bucket(stack, 'Bucket', { enforceSSL: true, encryptionKey: key });
    const grant = grantIn(stack, { vendor: Vendor.TELUS, bucket, key });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::S3::BucketPolicy', 1);
    const policyId = stack.getLogicalId(bucket.policy!.node.defaultChild as any);
    const bucketId = stack.getLogicalId(bucket.node.defaultChild as any);
    const keyId = stack.getLogicalId(key.node.defaultChild as any);
    const dependsOn: string[] = grantResource(stack).DependsOn;
    for (const id of [bucketId, policyId, keyId]) assert.ok(dependsOn.includes(id), `DependsOn ${id}`);
    assert.ok(grant);
  });

  test('a bucket policy added after the grant is still a dependency', () => {
    const stack = newStack();
    const bucket = new s3.Bucket(stack, 'Bucket');
    grantIn(stack, { vendor: Vendor.TELUS, bucket });
    bucket.grantRead(new (require('aws-cdk-lib/aws-iam').AccountPrincipal)('111122223333'));
    const policyId = stack.getLogicalId(bucket.policy!.node.defaultChild as any);
    Template.fromStack(stack).hasResource('Custom::VendorGrant', { DependsOn: Match.arrayWith([policyId]) });
  });

  test('imported buckets and keys: the dependency is harmless and the names are literals', () => {
    const stack = newStack();
    const bucket = s3.Bucket.fromBucketName(stack, 'Imported', 'corp-data');
    const key = kms.Key.fromKeyArn(stack, 'ImportedKey', KEY_ARN);
    grantIn(stack, { vendor: Vendor.TELUS, bucket, key });
    const r = grantResource(stack);
    assert.equal(r.DependsOn, undefined);
    assert.equal(r.Properties.BucketName, 'corp-data');
    assert.equal(r.Properties.KmsKeyArn, KEY_ARN);
  });

  test('with a provider: its service token, and it depends on the whole provider', () => {
    const stack = newStack();
    const provider = new VendorGrantsProvider(stack, 'Provider');
    grantIn(stack, { vendor: Vendor.TELUS, provider });
    const r = grantResource(stack);
    assert.deepEqual(r.Properties.ServiceToken, { 'Fn::GetAtt': [stack.getLogicalId(provider.function.node.defaultChild as any), 'Arn'] });
    for (const c of [provider.function, provider.role, provider.lockTable, provider.logGroup]) {
      assert.ok(r.DependsOn.includes(stack.getLogicalId(c.node.defaultChild as any)));
    }
    assert.ok(r.DependsOn.some((id: string) => id.startsWith('ProviderFunctionPolicy')));
    assert.ok(r.DependsOn.some((id: string) => id.startsWith('ProviderFunctionCloudFormationInvoke')));
  });

  test('a provider in another stack', () => {
    const app = new App({ analyticsReporting: false });
    const synthesizer = () => new DefaultStackSynthesizer({ generateBootstrapVersionRule: false });
    const env = { account: '123456789012', region: 'us-east-1' };
    const providerStack = new Stack(app, 'Provider', { env, synthesizer: synthesizer() });
    const provider = new VendorGrantsProvider(providerStack, 'Provider', { roleNamePattern: 'Data-*' });
    const stack = new Stack(app, 'Data', { env, synthesizer: synthesizer() });
    grantIn(stack, { vendor: Vendor.SCALE_AI, provider, externalId: EXTERNAL_ID, roleName: 'Data-scale' });
    const r = grantResource(stack);
    assert.ok(r.Properties.ServiceToken['Fn::ImportValue']);
    assert.ok(stack.dependencies.includes(providerStack));
  });

  test('serviceTimeout is whole seconds', () => {
    for (const [timeout, seconds] of [
      [Duration.minutes(5), 300],
      [Duration.seconds(1), 1],
      [Duration.hours(1), 3600],
    ] as const) {
      const stack = newStack();
      grantIn(stack, { vendor: Vendor.TELUS, serviceTimeout: timeout });
      assert.equal(grantResource(stack).Properties.ServiceTimeout, seconds);
    }
  });

  test('tokens pass through unchecked', () => {
    const stack = newStack({ envAgnostic: true });
    const externalId = new CfnParameter(stack, 'ExternalId', { noEcho: true });
    const principals = new CfnParameter(stack, 'Principals', { type: 'CommaDelimitedList' });
    const prefix = new CfnParameter(stack, 'Prefix');
    const roleName = new CfnParameter(stack, 'RoleName');
    const timeout = new CfnParameter(stack, 'Timeout', { type: 'Number' });
    const bucketName = new CfnParameter(stack, 'BucketName');
    const bucket = s3.Bucket.fromBucketName(stack, 'B', bucketName.valueAsString);
    const key = kms.Alias.fromAliasName(stack, 'Alias', 'alias/data');
    new VendorGrant(stack, 'Grant', {
      serviceToken: Fn.importValue('vendor-grants-ServiceToken'),
      vendor: Vendor.CUSTOM,
      mode: GrantMode.ROLE,
      access: Access.READ,
      bucket,
      key,
      externalId: externalId.valueAsString,
      vendorPrincipals: principals.valueAsList,
      prefix: prefix.valueAsString,
      roleName: roleName.valueAsString,
      serviceTimeout: Duration.seconds(timeout.valueAsNumber),
    });
    const r = grantResource(stack);
    assert.deepEqual(r.Properties.ExternalId, { Ref: 'ExternalId' });
    assert.deepEqual(r.Properties.VendorPrincipal, { Ref: 'Principals' });
    assert.deepEqual(r.Properties.Prefix, { Ref: 'Prefix' });
    assert.deepEqual(r.Properties.RoleName, { Ref: 'RoleName' });
    assert.deepEqual(r.Properties.BucketName, { Ref: 'BucketName' });
    assert.deepEqual(r.Properties.ServiceTimeout, { Ref: 'Timeout' });
    assert.ok(r.Properties.KmsKeyArn['Fn::Join']);

    // A token where a literal would be refused: an ExternalId in bucket-policy mode may resolve
    // to "" (absent for the function), a principal list token for a fixed vendor may be empty.
    const stack2 = newStack({ envAgnostic: true });
    const p2 = new CfnParameter(stack2, 'ExternalId', { default: '' });
    const l2 = new CfnParameter(stack2, 'Principals', { type: 'CommaDelimitedList', default: '' });
    grantIn(stack2, {
      vendor: Vendor.SCALE_AI,
      mode: GrantMode.BUCKET_POLICY,
      externalId: p2.valueAsString,
      vendorPrincipals: l2.valueAsList,
    });
    // Single principal tokens in a list count as given: vcc needs one.
    const stack3 = newStack({ envAgnostic: true });
    const one = new CfnParameter(stack3, 'Principal');
    grantIn(stack3, { vendor: Vendor.VCC, vendorPrincipals: [one.valueAsString] });
    assert.deepEqual(grantResource(stack3).Properties.VendorPrincipal, [{ Ref: 'Principal' }]);
  });

  test('a stack without a region: principals are checked except for their partition', () => {
    const stack = newStack({ envAgnostic: true });
    grantIn(stack, { vendor: Vendor.VCC, vendorPrincipals: ['arn:aws-cn:iam::123456789012:role/vendor-role'] });
    const cn = newStack({ env: { region: 'cn-north-1', account: '123456789012' } });
    grantIn(cn, { vendor: Vendor.VCC, vendorPrincipals: ['arn:aws-cn:iam::123456789012:role/vendor-role'] });
    const us = newStack();
    assert.throws(
      () => grantIn(us, { vendor: Vendor.VCC, vendorPrincipals: ['arn:aws-cn:iam::123456789012:role/vendor-role'] }),
      /it is in partition "aws-cn", but this grant is in "aws"/,
    );
  });

  test('role names the provider may manage pass', () => {
    const stack = newStack();
    const provider = new VendorGrantsProvider(stack, 'Provider', { roleNamePattern: 'Data-*' });
    const bucket = new s3.Bucket(stack, 'Bucket');
    let i = 0;
    for (const roleName of ['VendorGrant-anything', 'ScaleAI-Integration', 'Data-vendor', undefined]) {
      new VendorGrant(stack, `Grant${i++}`, { provider, vendor: Vendor.SCALE_AI, bucket, externalId: EXTERNAL_ID, roleName });
    }
    // In bucket-policy mode the function refuses RoleName itself (a function rule, tested in the table).
    Template.fromStack(stack).resourceCountIs('Custom::VendorGrant', 4);
  });

  test('the provider allow-lists accept what they list', () => {
    const stack = newStack();
    const provider = new VendorGrantsProvider(stack, 'Provider', {
      allowedVendors: [Vendor.VCC],
      allowedPrincipals: ['123456789012'],
    });
    grantIn(stack, { provider, vendor: Vendor.VCC, vendorPrincipals: [VENDOR_ROLE, VENDOR_ROLE_SECONDARY] });
    Template.fromStack(stack).resourceCountIs('Custom::VendorGrant', 1);
  });
});
