/**
 * Every synth-time rejection of test/rejections.ts: the construct throws exactly its message,
 * and the rows that mirror a function rule are test/contract/rejections.json (compared, or
 * written with UPDATE_CONTRACT=1), with the Properties the construct would have emitted.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Token } from 'aws-cdk-lib';

import { VendorGrant } from '../src';
import { renderGrantProperties } from '../src/grant';
import { checkGrantProperties, checkPrincipal, glob, isBlank, principalKind, principalMatches, rustDebug } from '../src/validation';
import { CDK_ROOT, checkFixture, fakeAssets, realAssets, throwsExactly } from './helpers';
import { REJECTIONS, build } from './rejections';

describe('synth-time rejections', () => {
  before(() => fakeAssets());
  after(() => realAssets());

  test('the table has unique names', () => {
    const names = REJECTIONS.map((r) => r.name);
    assert.equal(new Set(names).size, names.length);
  });

  for (const rejection of REJECTIONS) {
    test(`${rejection.name}: ${rejection.message.slice(0, 80)}`, () => {
      const { stack, props } = build(rejection);
      throwsExactly(() => new VendorGrant(stack, 'Grant', props), rejection.message);
    });
  }

  test('contract/rejections.json: the Properties and messages of the rules the function has too', () => {
    const rows = REJECTIONS.filter((r) => r.mirrorsFunction).map((r) => {
      const { stack, props } = build(r);
      const properties = renderGrantProperties(props);
      delete properties.ServiceToken;
      // All literals: what the function would receive as it is.
      assert.deepEqual(stack.resolve(properties), properties, `${r.name}: the Properties hold tokens`);
      for (const value of Object.values(properties)) assert.ok(!Token.isUnresolved(value), r.name);
      return { name: r.name, properties, message: r.message };
    });
    assert.ok(rows.length >= 30);
    checkFixture(path.join(CDK_ROOT, 'test', 'contract', 'rejections.json'), rows);
  });
});

describe('the checks behind the messages', () => {
  test("rustDebug quotes as Rust's {:?} does", () => {
    assert.equal(rustDebug('plain'), '"plain"');
    assert.equal(rustDebug('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(rustDebug('a\nb\tc\rd\0'), '"a\\nb\\tc\\rd\\0"');
    assert.equal(rustDebug('\u0001\u007f'), '"\\u{1}\\u{7f}"');
    assert.equal(rustDebug("it's é"), '"it\'s é"');
  });

  test('valid principals pass', () => {
    for (const p of [
      '123456789012',
      'arn:aws:iam::123456789012:root',
      'arn:aws:iam::123456789012:role/vendor-role',
      'arn:aws:iam::123456789012:role/path/to/vendor-role',
      'arn:aws:iam::123456789012:user/vendor',
      'arn:aws:sts::123456789012:assumed-role/vendor-role/session',
    ]) {
      checkPrincipal('VendorPrincipal', p, 'aws');
    }
    // Partition unknown (region a token): not compared.
    checkPrincipal('VendorPrincipal', 'arn:aws-cn:iam::123456789012:role/x', undefined);
    assert.throws(() => checkPrincipal('VendorPrincipal', 'arn:aws:sts::123456789012:assumed-role/only', 'aws'));
    assert.throws(() => checkPrincipal('VendorPrincipal', 'arn:aws:iam::123456789012:role/', 'aws'));
  });

  test("allow-list matching is the function's", () => {
    assert.ok(principalMatches('111122223333', '111122223333'));
    assert.ok(principalMatches('111122223333', 'arn:aws:iam::111122223333:role/Vendor'));
    assert.ok(!principalMatches('111122223333', 'arn:aws:iam::444455556666:role/Vendor'));
    assert.ok(principalMatches('arn:aws:iam::111122223333:role/vendor-*', 'arn:aws:iam::111122223333:role/vendor-export'));
    assert.ok(!principalMatches('arn:aws:iam::111122223333:role/vendor-*', 'arn:aws:iam::111122223333:role/admin'));
    assert.ok(principalMatches('arn:aws:iam::111122223333:root', '111122223333'));
    assert.ok(principalMatches('arn:aws:iam::11112222333?:root', '111122223334'));
    assert.ok(!principalMatches('arn:aws:iam::*:root', 'arn:aws:iam::1:role/x'));
    assert.ok(!glob('*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000)));
    assert.ok(glob('VendorGrant-*', 'VendorGrant-vcc-0123456789abcdef'));
    assert.ok(!glob('VendorGrant-*', 'ScaleAI-Integration'));
  });
});

describe('issue 20: blank prefixes, principal kinds, partitions', () => {
  test('blank is what shows nothing: white space (U+3000, NBSP) and zero-width characters', () => {
    for (const blank of ['', ' ', '\t', '\u3000', '\u00a0', '\u200b', '\ufeff', '\u2060', ' \u3000\u200b ']) {
      assert.ok(isBlank(blank), JSON.stringify(blank));
      assert.throws(() => checkGrantProperties({ Vendor: 'telus', BucketName: 'b-1', Prefix: blank }), /^Error: Prefix .* omit Prefix$/);
    }
    for (const shown of ['a', ' a', 'data', '/', '\u3000x']) assert.ok(!isBlank(shown), shown);
  });

  test('the kind of a principal', () => {
    assert.equal(principalKind('123456789012'), 'account');
    assert.equal(principalKind('arn:aws:iam::123456789012:root'), 'account');
    assert.equal(principalKind('arn:aws-cn:iam::123456789012:role/a/b'), 'role');
    assert.equal(principalKind('arn:aws:iam::123456789012:user/u'), 'user');
    assert.equal(principalKind('arn:aws:sts::123456789012:assumed-role/r/s'), 'assumed-role');
    assert.equal(principalKind('not-a-principal'), undefined);
  });

  test('custom takes every kind; vcc and alphasense only roles', () => {
    for (const p of ['123456789012', 'arn:aws:iam::123456789012:user/u', 'arn:aws:iam::123456789012:role/r']) {
      checkGrantProperties({ Vendor: 'custom', BucketName: 'b-1', Access: 'read', VendorPrincipal: p }, 'aws');
    }
    checkGrantProperties({ Vendor: 'vcc', BucketName: 'b-1', VendorPrincipal: 'arn:aws:iam::123456789012:role/r' }, 'aws');
    assert.throws(
      () => checkGrantProperties({ Vendor: 'vcc', BucketName: 'b-1', VendorPrincipal: 'arn:aws:iam::123456789012:user/u' }, 'aws'),
      /is a user, but VCC Interaction Content Export's guide names roles/,
    );
  });

  test('telus and scale-ai are refused outside the aws partition, naming custom', () => {
    for (const [props, partition] of [
      [{ Vendor: 'telus', BucketName: 'b-1' }, 'aws-cn'],
      [{ Vendor: 'scale-ai', BucketName: 'b-1', ExternalId: 'ext-123' }, 'aws-us-gov'],
    ] as const) {
      assert.throws(
        () => checkGrantProperties(props, partition),
        new RegExp(`exists in the aws partition only, and this grant is in ${partition}; use Vendor: custom`),
      );
      checkGrantProperties(props, 'aws');
      checkGrantProperties(props, undefined);
    }
    checkGrantProperties({ Vendor: 'custom', BucketName: 'b-1', Access: 'read', VendorPrincipal: 'arn:aws-cn:iam::123456789012:role/r' }, 'aws-cn');
  });
});
