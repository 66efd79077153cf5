/**
 * Contract stacks: synthesized and compared with test/contract/<name>.template.json (rewritten
 * with UPDATE_CONTRACT=1). A Rust test of the vendor-grants repository resolves these templates
 * against moto and runs the grants through the real function, so they keep to what its resolver
 * emulates: grants with `Fn.importValue('vendor-grants-ServiceToken')`, besides them only
 * AWS::S3::Bucket and AWS::KMS::Key, no BucketPolicy, no CDKMetadata, no Parameters, Rules or
 * Conditions, and intrinsics limited to Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::ImportValue.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { App, CfnOutput, DefaultStackSynthesizer, Duration, Fn, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';

import { Access, GrantMode, Vendor, VendorGrant, VendorGrantProps } from '../src';
import { CDK_ROOT, checkFixture } from './helpers';
import { EXTERNAL_ID, VENDOR_ROLE, VENDOR_ROLE_SECONDARY } from './rejections';

const CONTRACT_DIR = path.join(CDK_ROOT, 'test', 'contract');

type GrantSpec = Omit<VendorGrantProps, 'bucket' | 'key' | 'serviceToken' | 'provider'>;

interface ContractStack {
  readonly name: string;
  readonly description: string;
  /** Whether the stack has a customer-managed key (granted to the vendor, encrypting the bucket). */
  readonly key: boolean;
  /** Bucket settings: AlphaSense's requirements. */
  readonly bucket?: s3.BucketProps;
  readonly grant: GrantSpec;
}

const CONTRACT_STACKS: readonly ContractStack[] = [
  {
    name: 'telus',
    description: 'TELUS (bucket-policy, default access full) with a customer-managed key',
    key: true,
    grant: { vendor: Vendor.TELUS },
  },
  {
    name: 'scale-ai-role',
    description: 'Scale AI in role mode (its default): role ScaleAI-Integration with an ExternalId, and a key',
    key: true,
    grant: { vendor: Vendor.SCALE_AI, externalId: EXTERNAL_ID },
  },
  {
    name: 'scale-ai-bucket-policy',
    description: 'Scale AI in bucket-policy mode (GetObject only), no key',
    key: false,
    grant: { vendor: Vendor.SCALE_AI, mode: GrantMode.BUCKET_POLICY },
  },
  {
    name: 'vcc-role',
    description: "VCC in role mode (its default, no ExternalId), the vendor's two service principals, and a key",
    key: true,
    grant: { vendor: Vendor.VCC, vendorPrincipals: [VENDOR_ROLE, VENDOR_ROLE_SECONDARY], serviceTimeout: Duration.minutes(5) },
  },
  {
    name: 'vcc-bucket-policy',
    description: 'VCC in bucket-policy mode, one principal, no key',
    key: false,
    grant: { vendor: Vendor.VCC, mode: GrantMode.BUCKET_POLICY, vendorPrincipals: [VENDOR_ROLE] },
  },
  {
    name: 'alphasense',
    description: 'AlphaSense in bucket-policy mode (its default), the bucket as its guide requires: SSE-KMS with the key, Block Public Access, ACLs disabled',
    key: true,
    bucket: {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      bucketKeyEnabled: true,
    },
    grant: { vendor: Vendor.ALPHASENSE, vendorPrincipals: [VENDOR_ROLE], serviceTimeout: Duration.minutes(5) },
  },
  {
    name: 'custom',
    description: 'A custom vendor in bucket-policy mode with Access read-write and a Prefix',
    key: false,
    grant: { vendor: Vendor.CUSTOM, access: Access.READ_WRITE, prefix: 'datasets/', vendorPrincipals: [VENDOR_ROLE] },
  },
  {
    name: 'custom-role',
    description: 'A custom vendor in role mode with Access read, a Prefix, an ExternalId, a RoleName and a key',
    key: true,
    grant: {
      vendor: Vendor.CUSTOM,
      mode: GrantMode.ROLE,
      access: Access.READ,
      prefix: 'exports/',
      externalId: EXTERNAL_ID,
      vendorPrincipals: [VENDOR_ROLE],
      roleName: 'VendorGrant-contract-custom',
    },
  },
];

/** The grant attributes the stacks output (Fn::GetAtt Grant.X). */
const ATTRIBUTES: [string, (g: VendorGrant) => string][] = [
  ['GrantId', (g) => g.grantId],
  ['BucketArn', (g) => g.bucketArn],
  ['KmsKeyArn', (g) => g.kmsKeyArn],
  ['RoleArn', (g) => g.roleArn],
  ['VendorPrincipal', (g) => g.vendorPrincipal],
  ['StatementIds', (g) => g.statementIds],
  ['Region', (g) => g.region],
];

function synthesize(spec: ContractStack): any {
  const app = new App({ analyticsReporting: false });
  const stack = new Stack(app, `contract-${spec.name}`, {
    description: `vendor-grants-cdk contract stack: ${spec.description}`,
    synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }),
  });
  const key = spec.key ? new kms.Key(stack, 'DataKey', { description: `vendor-grants-cdk contract: ${spec.name}` }) : undefined;
  const bucket = new s3.Bucket(stack, 'DataBucket', {
    ...(key ? { encryption: s3.BucketEncryption.KMS, encryptionKey: key } : {}),
    ...spec.bucket,
  });
  const grant = new VendorGrant(stack, 'Grant', {
    serviceToken: Fn.importValue('vendor-grants-ServiceToken'),
    bucket,
    key,
    ...spec.grant,
  });
  for (const [name, value] of ATTRIBUTES) new CfnOutput(stack, name, { value: value(grant) });
  new CfnOutput(stack, 'BucketName', { value: bucket.bucketName });
  return Template.fromStack(stack).toJSON();
}

const ALLOWED_INTRINSICS = new Set(['Ref', 'Fn::GetAtt', 'Fn::Sub', 'Fn::Join', 'Fn::ImportValue']);

function intrinsicsOf(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => intrinsicsOf(v, out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'Ref' || k.startsWith('Fn::') || k === 'Condition') out.add(k);
      intrinsicsOf(v, out);
    }
  }
  return out;
}

describe('contract stacks', () => {
  test('together they cover every vendor and every mode', () => {
    const covered = new Set(
      CONTRACT_STACKS.map((s) => {
        const defaults: Record<string, GrantMode> = { 'scale-ai': GrantMode.ROLE, 'vcc': GrantMode.ROLE };
        return `${s.grant.vendor}/${s.grant.mode ?? defaults[s.grant.vendor] ?? GrantMode.BUCKET_POLICY}`;
      }),
    );
    for (const expected of ['telus/bucket-policy', 'scale-ai/role', 'scale-ai/bucket-policy', 'vcc/role', 'vcc/bucket-policy', 'alphasense/bucket-policy', 'custom/bucket-policy', 'custom/role']) {
      assert.ok(covered.has(expected), expected);
    }
  });

  for (const spec of CONTRACT_STACKS) {
    test(`${spec.name}.template.json`, () => {
      const template = synthesize(spec);

      // What the Rust resolver emulates, and nothing else.
      for (const section of ['Parameters', 'Rules', 'Conditions', 'Mappings', 'Transform']) {
        assert.equal(template[section], undefined, `no ${section}`);
      }
      const types = Object.values(template.Resources).map((r: any) => r.Type);
      for (const type of types) {
        assert.ok(['AWS::S3::Bucket', 'AWS::KMS::Key', 'Custom::VendorGrant'].includes(type), `resource type ${type}`);
      }
      assert.equal(types.filter((t) => t === 'Custom::VendorGrant').length, 1);
      for (const k of intrinsicsOf(template)) assert.ok(ALLOWED_INTRINSICS.has(k), `intrinsic ${k}`);
      const grant: any = Object.values(template.Resources).find((r: any) => r.Type === 'Custom::VendorGrant');
      assert.deepEqual(grant.Properties.ServiceToken, { 'Fn::ImportValue': 'vendor-grants-ServiceToken' });
      for (const [name] of ATTRIBUTES) assert.ok(template.Outputs[name].Value['Fn::GetAtt'], name);

      if (spec.name === 'alphasense') {
        const bucket: any = Object.values(template.Resources).find((r: any) => r.Type === 'AWS::S3::Bucket');
        const sse = bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0];
        assert.equal(sse.ServerSideEncryptionByDefault.SSEAlgorithm, 'aws:kms');
        assert.equal(sse.ServerSideEncryptionByDefault.KMSMasterKeyID['Fn::GetAtt'][1], 'Arn');
        assert.deepEqual(bucket.Properties.PublicAccessBlockConfiguration, {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        });
        assert.deepEqual(bucket.Properties.OwnershipControls, { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
      }

      checkFixture(path.join(CONTRACT_DIR, `${spec.name}.template.json`), template);
    });
  }

  test('no stale fixtures', () => {
    const expected = new Set([...CONTRACT_STACKS.map((s) => `${s.name}.template.json`), 'rejections.json']);
    for (const file of fs.readdirSync(CONTRACT_DIR)) {
      if (!expected.has(file) && process.env.UPDATE_CONTRACT === '1') fs.rmSync(path.join(CONTRACT_DIR, file));
      else assert.ok(expected.has(file), `test/contract/${file} belongs to no contract stack: run \`UPDATE_CONTRACT=1 npm test\``);
    }
  });
});
