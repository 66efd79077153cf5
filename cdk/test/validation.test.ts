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
import { checkPrincipal, glob, principalMatches, rustDebug } from '../src/validation';
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
